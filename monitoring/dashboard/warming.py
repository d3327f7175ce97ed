"""Cache warming: what the dashboard and the stats read first, computed ahead of the reader.

Worth warming: the dashboard's series for every range (the costliest reads, the same for every
viewer until a new snapshot or rollup lands), its tables, today's orders per restaurant (read
by the tiles, /health/stats and /metrics) and the overall health the tiles show (a detailed
report waits on every check, up to its timeout). Each is cached under a key of what it depends
on, so warming after a deploy or on schedule only ever puts the current answer in place.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from monitoring.dashboard.figures import RANGES, series_json, tables_json
from monitoring.dashboard.selectors import orders_today
from monitoring.health.probes import detailed_report


def cache_warm() -> dict[str, float]:
    """Fill every warmed entry; return the seconds each took."""
    took: dict[str, float] = {}
    for range_key in RANGES:
        started = time.perf_counter()
        series_json(range_key=range_key, refresh=True)
        took[f"series {range_key}"] = time.perf_counter() - started
    steps: list[tuple[str, Callable[[], object]]] = [
        ("tables", lambda: tables_json(refresh=True)),
        ("orders today", lambda: orders_today(refresh=True)),
        ("health", detailed_report),  # remembers the overall status the tiles show
    ]
    for name, warm in steps:
        started = time.perf_counter()
        warm()
        took[name] = time.perf_counter() - started
    return took
