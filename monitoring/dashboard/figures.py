"""What the performance dashboard reads: history from snapshots, tables, and the live figures.

Ranges up to a day read minute rows, a week or a month hour rows, 90 days six-hour rows; the
database averages them into at most MAX_POINTS points per series, so any range is a few
thousand numbers, read through the (resolution, taken_at) index without the histograms. The
live figures are computed at most once per push interval per process, however many
dashboards are open.
"""

from __future__ import annotations

import json
import math
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import groupby
from operator import itemgetter
from typing import Any, cast

from django.conf import settings
from django.db import connection
from django.db.models import Max, Sum
from django.utils import timezone

from backups.selectors import change_marker as backup_changes
from backups.selectors import newest_verified, pitr_summary, recent
from common.cache import hit_ratios, read_through
from common.clock import floor_to
from monitoring.alerts.models import Alert
from monitoring.dashboard.selectors import ORDERS_CACHE, orders_today
from monitoring.health.probes import last_status
from monitoring.history.models import CLUSTER, MetricSnapshot, Resolution
from monitoring.history.service_levels import service_levels
from monitoring.ledger.deploys import deployments_between, deployments_marker
from monitoring.ledger.jobs import job_summaries
from monitoring.ledger.models import TaskRun
from monitoring.requests.models import FrontendErrorGroup
from monitoring.requests.queries import SORTS, n_plus_one_suspects, top_queries_by
from monitoring.requests.selectors import traffic_summary
from realtime.selectors import presence_summary, restaurant_names_and_currencies


@dataclass(frozen=True)
class Range:
    key: str
    span: timedelta
    resolution: int


RANGES = {r.key: r for r in (
    Range("1h", timedelta(hours=1), Resolution.MINUTE),
    Range("24h", timedelta(hours=24), Resolution.MINUTE),
    Range("7d", timedelta(days=7), Resolution.HOUR),
    Range("30d", timedelta(days=30), Resolution.HOUR),
    Range("90d", timedelta(days=90), Resolution.SIX_HOURS),
)}  # fmt: skip
CLUSTER_SERIES = ("request_rate", "error_rate", "p50_ms", "p95_ms", "p99_ms", "sockets", "db_connections",
                  "queue_depth", "workers", "redis_memory_bytes", "db_size_bytes")  # fmt: skip
WORST_OF = {"p50_ms", "p95_ms", "p99_ms", "error_rate", "queue_depth"}
MAX_POINTS = 480  # per series: more than a chart on a laptop has pixels for
HOST_SERIES = ("cpu_percent", "memory_percent", "disk_percent", "load_1", "process_rss_bytes", "sockets")


def bucket_step(chosen: Range) -> int:
    """Seconds per point when the range has more rows than MAX_POINTS, else 0 (every row)."""
    rows = chosen.span.total_seconds() / chosen.resolution
    if rows <= MAX_POINTS:
        return 0
    return math.ceil(rows / MAX_POINTS) * chosen.resolution


def _epoch(at: datetime) -> int:
    return int(at.timestamp())


def known_hosts(*, now: datetime | None = None) -> list[str]:
    """Hosts seen in the last 90 days: read from the coarsest rows that cover each stretch
    (six-hour rows, then hour rows, then the last two hours of minute rows), never from
    months of minute rows."""
    now = now or timezone.now()
    stretches = ((Resolution.SIX_HOURS, timedelta(days=90)), (Resolution.HOUR, timedelta(days=2)),
                 (Resolution.MINUTE, timedelta(hours=2)))  # fmt: skip
    hosts: set[str] = set()
    for resolution, span in stretches:
        rows = MetricSnapshot.objects.filter(resolution=resolution, taken_at__gte=now - span).exclude(host=CLUSTER)
        hosts.update(rows.values_list("host", flat=True).distinct())
    return sorted(hosts)


def _epoch_sql(vendor: str) -> str:
    if vendor == "postgresql":
        return "EXTRACT(EPOCH FROM taken_at)::bigint"
    if vendor == "sqlite":
        return "CAST(strftime('%%s', taken_at) AS INTEGER)"
    raise NotImplementedError(f"the dashboard's series need PostgreSQL or SQLite, not {vendor}")


@dataclass(frozen=True)
class Window:
    resolution: int  # which rows: minute or hour
    since: datetime
    step: int  # seconds per point


def _grouped(table: str, key: str, columns: dict[str, str], window: Window, *,
             extra_where: str = "", params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:  # fmt: skip
    """Rows of (key, bucket start, aggregates...) ordered by key and time, from one statement.

    One scan of the range index reads every host's rows from the same pages (rows of one
    minute are written together), the database does the bucketing and the averaging, and
    integers come back instead of datetimes: turning values into Python objects, not the scan,
    is what a long range costs."""
    epoch = _epoch_sql(connection.vendor)
    selects = ", ".join(f"CAST({agg} AS DOUBLE PRECISION)" for agg in columns.values())
    # Table, columns and aggregates are this module's constants; every value is a parameter.
    sql = (
        f"SELECT {key}, ({epoch} / %s) * %s AS bucket, {selects} FROM {table} "  # noqa: S608
        f"WHERE resolution = %s AND taken_at >= %s {extra_where} GROUP BY 1, 2 ORDER BY 1, 2"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, (window.step, window.step, window.resolution, window.since, *params))
        return cursor.fetchall()


def _by_key(rows: list[tuple[Any, ...]], names: tuple[str, ...]) -> dict[Any, dict[str, list[Any]]]:
    result = {}
    for key, group in groupby(rows, key=itemgetter(0)):
        columns = list(zip(*group, strict=True))
        result[key] = {"t": list(columns[1]), **{n: list(c) for n, c in zip(names, columns[2:], strict=True)}}
    return result


def _aggregate(name: str) -> str:
    # A bucket of several rows shows its worst latency and error rate, so no spike hides.
    return f"MAX({name})" if name in WORST_OF else f"AVG(CAST({name} AS DOUBLE PRECISION))"


def dashboard_series(*, range_key: str, hosts: list[str] | None = None, now: datetime | None = None) -> dict[str, Any]:
    """Columns ready for charting: ``t`` (epoch seconds) and one list per figure, per host and
    for the installation, at most MAX_POINTS points each."""
    chosen = RANGES[range_key]
    now = now or timezone.now()
    since = now - chosen.span
    step = bucket_step(chosen) or chosen.resolution
    window = Window(resolution=chosen.resolution, since=since, step=step)
    where, params = "AND host <> %s", cast(tuple[Any, ...], (CLUSTER,))
    if hosts:
        where, params = f"AND host IN ({', '.join(['%s'] * len(hosts))})", tuple(hosts)
    # Two statements, each aggregating only its own columns, cost less than one over all of them.
    cluster_rows = _grouped("monitoring_metricsnapshot", "host", {n: _aggregate(n) for n in CLUSTER_SERIES},
                            window, extra_where="AND host = %s", params=(CLUSTER,))  # fmt: skip
    host_rows = _grouped("monitoring_metricsnapshot", "host", {n: _aggregate(n) for n in HOST_SERIES},
                         window, extra_where=where, params=params)  # fmt: skip
    empty: dict[str, list[Any]] = {"t": [], **{n: [] for n in CLUSTER_SERIES}}
    return {
        "range": chosen.key,
        "resolution": chosen.resolution,
        "step": step,
        "since": _epoch(since),
        "until": _epoch(now),
        "cluster": _by_key(cluster_rows, CLUSTER_SERIES).get(CLUSTER, empty),
        "hosts": _by_key(host_rows, HOST_SERIES),
        "restaurants": restaurant_series(window),
        "deploys": deployments_between(since, timezone.now()),
        "engine": connection.vendor,  # some figures (database connections) exist only on Postgres
    }


SERIES_CACHE = "dashboard-series"


def series_json(*, range_key: str, hosts: list[str] | None = None, refresh: bool = False) -> str:
    """The encoded series, from the cache when nothing underneath has changed.

    The key holds the range, the hosts, the window's end (rounded to the range's resolution)
    and the newest row at that resolution: a new snapshot or rollup makes a new key."""
    chosen = RANGES[range_key]
    window_end = floor_to(timezone.now(), chosen.resolution)
    newest = MetricSnapshot.objects.filter(resolution=chosen.resolution).aggregate(at=Max("taken_at"))["at"]
    parts = (chosen.key, sorted(hosts or []), window_end, newest, deployments_marker())
    return read_through(SERIES_CACHE, parts,
                        lambda: json.dumps(dashboard_series(range_key=range_key, hosts=hosts, now=window_end)),
                        timeout=2 * chosen.resolution + 60, refresh=refresh)  # fmt: skip


def restaurant_series(window: Window) -> dict[str, dict[str, Any]]:
    """Orders and revenue per restaurant, summed per ``window.step`` seconds; each restaurant's
    revenue is in its own currency (named, so the dashboard never puts two currencies on one axis)."""

    sums = {"orders": "SUM(orders)", "revenue": "SUM(revenue)"}
    by_id = _by_key(_grouped("monitoring_restaurantsnapshot", "restaurant_id", sums, window), ("orders", "revenue"))
    named = restaurant_names_and_currencies(by_id)
    ordered = sorted((named[pk], series) for pk, series in by_id.items() if pk in named)
    return {slug: {**series, "currency": currency} for (slug, currency), series in ordered}


def recent_backups(limit: int = 8) -> list[dict[str, Any]]:
    rows = recent(limit)
    return [
        {"id": b.pk, "status": b.status, "reason": b.reason, "started_at": b.started_at.isoformat(),
         "size_bytes": b.size_bytes, "verified_at": b.verified_at.isoformat() if b.verified_at else None,
         "error": b.error[:200]}
        for b in rows
    ]  # fmt: skip


def active_alerts() -> list[dict[str, Any]]:
    """Firing first, then pending and no-data, each newest first."""
    order = {Alert.State.FIRING: 0, Alert.State.PENDING: 1, Alert.State.NO_DATA: 2}
    rows = Alert.objects.filter(state__in=list(order), rule__enabled=True).select_related("rule")
    alerts = sorted(rows, key=lambda a: (order[Alert.State(a.state)], -(a.fired_at or a.pending_since or
                                                                       timezone.now()).timestamp()))  # fmt: skip
    return [
        {"id": a.pk, "rule": a.rule.name, "severity": a.rule.severity, "state": a.state, "labels": a.labels,
         "value": a.value, "since": (a.fired_at if a.state == Alert.State.FIRING else a.pending_since or
                                     a.last_evaluated_at), "held": a.held,
         "acknowledged": bool(a.acknowledged_at)}
        for a in alerts
    ]  # fmt: skip


TABLES_CACHE = "dashboard-tables"


def tables_json(*, refresh: bool = False) -> str:
    """The dashboard's tables, recomputed each minute and whenever an alert moves, a scheduled
    run is recorded or a backup changes (each of those changes the key)."""

    minute = _epoch(timezone.now()) // 60
    changes = (
        Alert.objects.aggregate(v=Sum("version"))["v"],
        TaskRun.objects.aggregate(n=Max("pk"))["n"],
        backup_changes(),
    )
    return read_through(TABLES_CACHE, (minute, *changes), lambda: json.dumps(dashboard_tables(), default=str),
                        timeout=120, refresh=refresh)  # fmt: skip


def dashboard_tables(*, minutes: int = 60) -> dict[str, Any]:
    errors = FrontendErrorGroup.objects.select_related("restaurant").order_by("-last_seen")[:10]
    return {
        "slow_queries": top_queries_by(minutes, 10, sorts=SORTS),
        "n_plus_one": n_plus_one_suspects(minutes)[:10],
        "frontend_errors": [
            {
                "id": e.pk,
                "type": e.error_type,
                "message": e.message[:200],
                "screen": e.screen,
                "count": e.count,
                "last_seen": e.last_seen.isoformat(),
                "restaurant": e.restaurant.slug if e.restaurant else "",
            }
            for e in errors
        ],
        "backups": recent_backups(),
        "pitr": pitr_summary(),
        "service_levels": [{"restaurant": slug, **levels} for slug, levels in service_levels(timezone.now()).items()],
        "jobs": job_summaries(),
        "alerts": active_alerts(),
        "cache": cache_stats(),
    }


def dashboard_tiles(*, compute_health: bool = True) -> dict[str, Any]:
    """The headline figures: the admin index's tiles and the dashboard's live frame. Pages
    pass ``compute_health=False`` and show the last known health rather than wait for it."""

    status = last_status(compute=compute_health) or "unknown"
    firing = list(Alert.objects.filter(state=Alert.State.FIRING, rule__enabled=True).values_list("rule__severity",
                                                                                                flat=True))  # fmt: skip
    overall = traffic_summary(per_route=False)["5m"]["overall"]
    verified = newest_verified()
    orders = orders_today()
    try:
        sockets = presence_summary()["total"]
    except Exception:
        sockets = None  # the presence store is down; the health tile says so
    return {
        "health": status,
        "error_rate": overall["error_rate"],
        "p95_ms": overall["p95_ms"],
        "request_rate": overall["rate_per_s"],
        "sockets": sockets,
        "orders_today": orders["orders"],
        "revenue_today": orders["revenue"],
        "orders_by_restaurant": {slug: t["orders"] for slug, t in orders["by_restaurant"].items()},
        "last_verified_backup": verified.verified_at.isoformat() if verified and verified.verified_at else None,
        "alerts_firing": len(firing),
        "alerts_critical": sum(1 for severity in firing if severity == "critical"),
        "at": timezone.now().isoformat(),
    }


def _ago(iso: str | None) -> str:
    if iso is None:
        return "never"
    seconds = (timezone.now() - datetime.fromisoformat(iso)).total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit} ago"
    return "just now"


def tiles_display(tiles: dict[str, Any]) -> list[dict[str, str]]:
    """The tiles as shown: label, formatted value, a state for colour, and where each leads."""
    from django.urls import reverse

    ops = reverse("ops-dashboard")
    error_pct = tiles["error_rate"] * 100
    p95 = tiles["p95_ms"]
    backup_age = _ago(tiles["last_verified_backup"])
    stale_backup = (
        tiles["last_verified_backup"] is None
        or (timezone.now() - datetime.fromisoformat(tiles["last_verified_backup"])).total_seconds()
        > settings.OPSITE_BACKUP_MAX_AGE_S
    )
    shown = [
        {"key": "health", "label": "Health", "value": tiles["health"], "href": reverse("health-detailed"),
         "state": {"healthy": "ok", "degraded": "warn", "unknown": "warn"}.get(tiles["health"], "bad")},
        {"key": "error_rate", "label": "Error rate (5 min)", "value": f"{error_pct:.2f} %",
         "href": f"{ops}#error_rate", "state": "bad" if error_pct > 5 else "warn" if error_pct > 1 else "ok"},
        {"key": "p95_ms", "label": "p95 latency (5 min)", "value": "-" if p95 is None else f"{p95:.0f} ms",
         "href": f"{ops}#latency", "state": "ok" if p95 is None or p95 < 500 else "warn" if p95 < 1000 else "bad"},
        {"key": "sockets", "label": "Open sockets", "value": "?" if tiles["sockets"] is None else str(tiles["sockets"]),
         "href": f"{ops}#sockets", "state": "ok" if tiles["sockets"] is not None else "warn"},
        {"key": "orders_today", "label": "Orders today", "value": str(tiles["orders_today"]),
         "href": f"{ops}#orders", "state": "ok"},
        {"key": "last_verified_backup", "label": "Last verified backup", "value": backup_age,
         "href": reverse("admin:backups_backup_changelist"), "state": "bad" if stale_backup else "ok"},
        {"key": "alerts_firing", "label": "Firing alerts", "value": str(tiles["alerts_firing"]),
         "href": f"{ops}#alerts",
         "state": "bad" if tiles["alerts_critical"] else "warn" if tiles["alerts_firing"] else "ok"},
    ]  # fmt: skip
    # the state in words as well as in colour
    return [{**tile, "state_text": TILE_STATE_TEXT[tile["state"]]} for tile in shown]


TILE_STATE_TEXT = {"ok": "ok", "warn": "warning", "bad": "needs attention"}


class LiveFigures:
    """``dashboard_tiles()`` computed at most once per interval in this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value: dict[str, Any] | None = None
        self._at = 0.0

    def get(self) -> dict[str, Any]:
        with self._lock:
            if self._value is None or time.monotonic() - self._at >= settings.OPSITE_DASHBOARD_PUSH_S * 0.8:
                tiles = dashboard_tiles()
                self._value = {**tiles, "tiles": tiles_display(tiles)}
                self._at = time.monotonic()
            return self._value


live_figures = LiveFigures()


def page_tiles() -> list[dict[str, str]]:
    """The tiles for a page being rendered: never waits on a health check."""
    return tiles_display(dashboard_tiles(compute_health=False))


def cache_stats() -> dict[str, dict[str, float | int | None]]:
    """Hits and misses of the caches the dashboard reads (and warming fills)."""
    return hit_ratios([SERIES_CACHE, TABLES_CACHE, ORDERS_CACHE])
