"""The feed's Prometheus series: events ingested by type, and how long an event takes from its
commit to the frame written on each staff socket (with the ingest request's ids as exemplars)."""

from __future__ import annotations

from prometheus_client import Counter

from common.series import ExemplarHistogram, bounded

from .models import OrderEvent

EVENT_TYPES = frozenset(OrderEvent.Type.values)

INGESTED = Counter("opsite_events_ingested", "Order events stored (repeats of an idempotency key excluded), by type",
                   ["type"])  # fmt: skip
DELIVERY = ExemplarHistogram(
    "opsite_feed_delivery_latency_seconds",
    "From an event's commit (or its outbox re-send) to its frame written on a staff socket",
)


def count_ingested(types: list[str]) -> None:
    for kind in types:
        INGESTED.labels(bounded(kind, EVENT_TYPES)).inc()
