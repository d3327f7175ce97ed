from __future__ import annotations

from typing import Any

from monitoring.requests.traffic import ALL_ROUTES, window

WINDOWS = {"1m": 1, "5m": 5, "1h": 60}


def traffic_summary(*, per_route: bool = True) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for label, minutes in WINDOWS.items():
        stats = window(minutes)
        entry: dict[str, Any] = {"overall": stats.pop(ALL_ROUTES).as_dict()}
        if per_route:
            entry["routes"] = {route: s.as_dict() for route, s in sorted(stats.items())}
        summary[label] = entry
    return summary
