"""Cache warming: what the dashboard and the stats read first, computed ahead of the reader.

Worth warming: the dashboard's series for every range (the costliest reads, the same for every
viewer until a new snapshot or rollup lands), its tables, today's orders per restaurant (read
by the tiles, /health/stats and /metrics) and the overall health the tiles show (a detailed
report waits on every check, up to its timeout). Each is cached under a key of what it depends
on, so warming after a deploy or on schedule only ever puts the current answer in place.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from django.conf import settings
from django.core.cache import cache
from django.db import connections

from monitoring.dashboard.figures import RANGES, series_json, tables_json
from monitoring.dashboard.selectors import orders_today
from monitoring.health.probes import detailed_report

log = logging.getLogger(__name__)


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


WARM_AT_START_KEY = "warm:at-start"


def warm_caches_at_start() -> threading.Thread | None:
    """Fill the warmed caches in the background as the first web process of a deployment
    starts, so the first dashboard after a deploy or a cache flush is not the one that waits;
    the other processes starting within ``OPSITE_CACHE_WARM_START_LOCK_S`` leave it to that one."""
    if not settings.OPSITE_CACHE_WARM_ON_START:
        return None

    def run() -> None:
        try:
            if not cache.add(
                WARM_AT_START_KEY, settings.OPSITE_NODE_NAME, timeout=settings.OPSITE_CACHE_WARM_START_LOCK_S
            ):
                return
            took = cache_warm()
            log.info("caches warmed at start: %d entries in %.0f ms", len(took), sum(took.values()) * 1000)
        except Exception as exc:  # a cold cache is slower, never broken
            log.warning("could not warm the caches at start: %s", exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run, name="opsite-cache-warm", daemon=True)
    thread.start()
    return thread
