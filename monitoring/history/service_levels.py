"""Each restaurant's service levels, from its snapshot rows: two objectives with their error
budgets over ``OPSITE_SLO_WINDOW_DAYS`` (30) and burn rates over short windows, as in the SRE
workbook's multiwindow alerts.

- **delivery**: orders on a board within ``OPSITE_SLO_DELIVERY_WITHIN_S`` (1 s) of their commit,
  counted per frame written (default objective 99 %); the boards' own acknowledgements give the
  same share as the board page saw it (shown, not budgeted: only a sample of frames is acked).
- **connected**: seconds of opening hours with at least one board connected (99.9 %).

The burn rate of a window is its share of bad events over the share the objective allows: 1
spends the budget exactly over the whole window, 14.4 spends 2 % of a 30-day budget in an hour.
The fast alert burns above 14.4 over both 1 h and 5 min, the slow one above 6 over both 6 h and
30 min: ``burn_fast`` and ``burn_slow`` are the smaller of each pair."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Max, Q, Sum

from monitoring.history.models import Resolution, RestaurantSnapshot
from realtime.selectors import slo_objectives

SHORT_WINDOWS = {"5m": timedelta(minutes=5), "30m": timedelta(minutes=30), "1h": timedelta(hours=1),
                 "6h": timedelta(hours=6)}  # fmt: skip
FIELDS = ("deliveries", "deliveries_late", "acks", "acks_late", "open_s", "connected_s")
FAST, SLOW = ("1h", "5m"), ("6h", "30m")


@dataclass(frozen=True)
class Budget:
    """Bad events out of all, against an objective (the share that must be good)."""

    total: int
    bad: int
    objective: float

    @property
    def sli(self) -> float | None:
        return None if self.total <= 0 else 1 - self.bad / self.total

    @property
    def burn(self) -> float | None:
        return None if self.total <= 0 else (self.bad / self.total) / (1 - self.objective)

    @property
    def remaining(self) -> float:
        """The share of the window's error budget left (negative once overspent)."""
        return 1.0 if self.total <= 0 else 1 - (self.bad / self.total) / (1 - self.objective)


def _budgets(sums: dict[str, int], delivery: float, connected: float) -> dict[str, Budget]:
    return {
        "delivery": Budget(sums.get("deliveries", 0), sums.get("deliveries_late", 0), delivery),
        "connected": Budget(sums.get("open_s", 0), sums.get("open_s", 0) - sums.get("connected_s", 0), connected),
        "acks": Budget(sums.get("acks", 0), sums.get("acks_late", 0), delivery),
    }


def _pair(budgets: dict[str, dict[str, Budget]], kind: str, pair: tuple[str, str]) -> float | None:
    burns = [budgets[w][kind].burn for w in pair]
    return None if any(b is None for b in burns) else min(b for b in burns if b is not None)


def _short_sums(now: datetime) -> dict[int, dict[str, dict[str, int]]]:
    """Per restaurant and short window, the minute rows' sums (one query)."""
    since = now - max(SHORT_WINDOWS.values())
    aggregates = {f"{name}__{window}": Sum(name, filter=Q(taken_at__gte=now - span), default=0)
                  for window, span in SHORT_WINDOWS.items() for name in FIELDS}  # fmt: skip
    rows = (RestaurantSnapshot.objects.filter(resolution=Resolution.MINUTE, taken_at__gte=since, taken_at__lt=now)
            .values("restaurant_id").annotate(**aggregates).order_by())  # fmt: skip
    out: dict[int, dict[str, dict[str, int]]] = {}
    for row in rows:
        per_window = out.setdefault(row["restaurant_id"], {})
        for key, value in row.items():
            if "__" in key:
                name, window = key.split("__")
                per_window.setdefault(window, {})[name] = int(value or 0)
    return out


def _long_sums(now: datetime) -> dict[int, dict[str, int]]:
    """Per restaurant, sums over the SLO window: hour rows up to the newest rolled-up hour, minute
    rows after it."""
    since = now - timedelta(days=settings.OPSITE_SLO_WINDOW_DAYS)
    newest_hour = RestaurantSnapshot.objects.filter(resolution=Resolution.HOUR, taken_at__gte=since).aggregate(
        at=Max("taken_at"))["at"]  # fmt: skip
    minutes_from = since if newest_hour is None else max(since, newest_hour + timedelta(hours=1))
    hours = RestaurantSnapshot.objects.filter(resolution=Resolution.HOUR, taken_at__gte=since,
                                              taken_at__lt=minutes_from)  # fmt: skip
    minutes = RestaurantSnapshot.objects.filter(resolution=Resolution.MINUTE, taken_at__gte=minutes_from,
                                                taken_at__lt=now)  # fmt: skip
    out: dict[int, dict[str, int]] = {}
    for rows in (hours, minutes):
        for row in rows.values("restaurant_id").annotate(**{n: Sum(n) for n in FIELDS}).order_by():
            sums = out.setdefault(row["restaurant_id"], {})
            for name in FIELDS:
                sums[name] = sums.get(name, 0) + int(row[name] or 0)
    return out


def restaurant_service_levels(now: datetime, objectives: dict[int, tuple[str, float | None, float | None]], *,
                              budgets: bool = True) -> dict[str, dict[str, Any]]:  # fmt: skip
    """Per restaurant slug: for delivery and connected, the objective, the SLI and the budget
    left over the SLO window, the burn rate of each short window, ``burn_fast`` and
    ``burn_slow``; for acks, the SLI. ``objectives`` maps restaurant ids to (slug, delivery
    objective, connected objective), None for the defaults."""
    short, long = _short_sums(now), (_long_sums(now) if budgets else {})  # burn rates alone need no budget
    result: dict[str, dict[str, Any]] = {}
    for restaurant_id, (slug, delivery, connected) in objectives.items():
        if restaurant_id not in short and restaurant_id not in long:
            continue
        delivery = delivery or settings.OPSITE_SLO_DELIVERY_OBJECTIVE
        connected = connected or settings.OPSITE_SLO_CONNECTED_OBJECTIVE
        windows = {w: _budgets(short.get(restaurant_id, {}).get(w, {}), delivery, connected) for w in SHORT_WINDOWS}
        window = _budgets(long.get(restaurant_id, {}), delivery, connected)
        levels: dict[str, Any] = {}
        for kind in ("delivery", "connected"):
            levels[kind] = {
                "objective": window[kind].objective, "sli": window[kind].sli, "budget_left": window[kind].remaining,
                "total": window[kind].total, "bad": window[kind].bad,
                "burn": {w: windows[w][kind].burn for w in SHORT_WINDOWS},
                "burn_fast": _pair(windows, kind, FAST), "burn_slow": _pair(windows, kind, SLOW),
            }  # fmt: skip
        levels["acks"] = {"sli": window["acks"].sli, "total": window["acks"].total, "sli_1h": windows["1h"]["acks"].sli}
        result[slug] = levels
    return result


def service_levels(now: datetime, *, budgets: bool = True) -> dict[str, dict[str, Any]]:
    """Every restaurant's service levels now, with its own objectives (without ``budgets``, only
    the burn rates are right: what the alert rules read every evaluation)."""
    return restaurant_service_levels(now, slo_objectives(), budgets=budgets)
