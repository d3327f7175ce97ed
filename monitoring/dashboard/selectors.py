from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.conf import settings

from common.cache import read_through
from common.labels import OTHER
from common.replicas import on_replica
from realtime.selectors import newest_event_id, order_totals

ORDERS_CACHE = "orders-today"


def orders_today(*, refresh: bool = False) -> dict[str, Any]:
    """Today's orders and revenue per restaurant, cached until an event arrives (events are
    only ever added, so the newest event id says whether anything changed)."""

    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    newest = newest_event_id()
    return read_through(ORDERS_CACHE, (start, newest), lambda: _orders_since(start), timeout=3600, refresh=refresh)


def _top_methods(by_method: dict[str, Any], keep: int) -> dict[str, str]:
    """The ``keep`` largest payment methods by revenue, the rest summed as ``other``: the POS
    names methods freely, and each becomes a Prometheus series and a dashboard column."""
    ranked = sorted(by_method.items(), key=lambda item: item[1], reverse=True)
    kept = {method: str(amount) for method, amount in ranked[:keep]}
    rest = [amount for _, amount in ranked[keep:]]
    if rest:
        kept[OTHER] = str(sum(rest, start=0) + Decimal(kept.get(OTHER, "0")))
    return kept


@on_replica
def _orders_since(start: datetime) -> dict[str, Any]:
    totals = order_totals(since=start)
    return {
        "since": start.isoformat(),
        "orders": sum(t["orders"] for t in totals.values()),
        "revenue": str(sum((t["revenue"] for t in totals.values()), start=0)),
        "by_restaurant": {
            slug: {**t, "revenue": str(t["revenue"]),
                   "revenue_by_payment_method": _top_methods(t["revenue_by_payment_method"],
                                                             settings.OPSITE_MAX_PAYMENT_METHODS)}
            for slug, t in totals.items()
        },
    }  # fmt: skip
