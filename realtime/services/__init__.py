from .feed import access_revoked_publish, events_publish, outbox_sweep
from .ingest import IngestResult, order_event_ingest
from .restaurants import (
    RestaurantError,
    membership_remove,
    restaurant_create,
    restaurant_rotate_token,
    staff_add,
)

__all__ = [
    "IngestResult",
    "RestaurantError",
    "access_revoked_publish",
    "events_publish",
    "membership_remove",
    "order_event_ingest",
    "outbox_sweep",
    "restaurant_create",
    "restaurant_rotate_token",
    "staff_add",
]
