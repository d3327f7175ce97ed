"""The shape of a feed event, and its JSON text built once for every socket that gets it."""

from __future__ import annotations

import json
from typing import Any

from .models import OrderEvent


def event_payload(event: OrderEvent, restaurant_slug: str) -> dict[str, Any]:
    return {
        "type": event.type,
        "seq": event.seq,
        "id": event.pk,
        "restaurant": restaurant_slug,
        "order_id": event.order_id,
        "total_amount": str(event.total_amount),
        "currency": event.currency,
        "items_count": event.items_count,
        "payment_method": event.payment_method,
        "table": event.table,
        "occurred_at": event.occurred_at.isoformat(),
        "data": event.data,
        "trace_id": event.trace_id,
    }


def event_frame(event: OrderEvent, restaurant_slug: str) -> str:
    return json.dumps(event_payload(event, restaurant_slug), separators=(",", ":"))
