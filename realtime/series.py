"""The feed's Prometheus series: events ingested by type, and how long an event takes from its
commit to the frame written on each staff socket (with the ingest request's ids as exemplars)."""

from __future__ import annotations

from prometheus_client import Counter

from common.series import CountedChild, ExemplarHistogram, bounded

from .models import OrderEvent

EVENT_TYPES = frozenset(OrderEvent.Type.values)

INGESTED = Counter("opsite_events_ingested", "Order events stored (repeats of an idempotency key excluded), by type",
                   ["type"])  # fmt: skip
DELIVERY = ExemplarHistogram(
    "opsite_feed_delivery_latency_seconds",
    "From an event's commit (or its outbox re-send) to its frame written on a staff socket",
)


_BY_TYPE = {kind: CountedChild(INGESTED.labels(kind)) for kind in (*EVENT_TYPES, "other")}


def count_ingested(types: list[str]) -> None:
    """Through the batch, like the request and socket counts."""
    for kind in types:
        _BY_TYPE[bounded(kind, EVENT_TYPES)].inc()
