from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models import Max
from django.utils import timezone

from common.cache import cached
from common.labels import OTHER
from common.replicas import on_replica
from monitoring.models import Heartbeat

BEAT = "beat"
EVALUATOR = "alerts.evaluator"  # written by each scheduled alert evaluation
WATCHDOG = "alerts.watchdog"  # the watchdog's lease: when it last stood in for the evaluator
WINDOWS = {"1m": 1, "5m": 5, "1h": 60}


def heartbeat_age_s(name: str, *, now: datetime | None = None) -> float | None:
    at = Heartbeat.objects.filter(name=name).values_list("at", flat=True).first()
    return None if at is None else ((now or timezone.now()) - at).total_seconds()


def beat_heartbeat_age_s() -> float | None:
    return heartbeat_age_s(BEAT)


def traffic_summary(*, per_route: bool = True) -> dict[str, Any]:
    from monitoring.requests.traffic import ALL_ROUTES, window

    summary: dict[str, Any] = {}
    for label, minutes in WINDOWS.items():
        stats = window(minutes)
        entry: dict[str, Any] = {"overall": stats.pop(ALL_ROUTES).as_dict()}
        if per_route:
            entry["routes"] = {route: s.as_dict() for route, s in sorted(stats.items())}
        summary[label] = entry
    return summary


ORDERS_CACHE = "orders-today"


def orders_today(*, refresh: bool = False) -> dict[str, Any]:
    """Today's orders and revenue per restaurant, cached until an event arrives (events are
    only ever added, so the newest event id says whether anything changed)."""
    from realtime.models import OrderEvent

    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    newest = OrderEvent.objects.aggregate(at=Max("pk"))["at"]
    return cached(ORDERS_CACHE, (start, newest), lambda: _orders_since(start), timeout=3600, refresh=refresh)


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
    from realtime.selectors import order_totals

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
