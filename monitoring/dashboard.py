"""What the performance dashboard reads: history from snapshots, tables, and the live figures.

Ranges up to a day read minute rows; longer ones read hour rows, so any range is a few
thousand rows at most, fetched through the (resolution, taken_at) index without the
histograms. The live figures are computed at most once per push interval per process, however
many dashboards are open.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from .models import CLUSTER, FrontendErrorGroup, MetricSnapshot, Resolution, RestaurantSnapshot


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
    Range("90d", timedelta(days=90), Resolution.HOUR),
)}  # fmt: skip
CLUSTER_SERIES = ("request_rate", "error_rate", "p50_ms", "p95_ms", "p99_ms", "sockets", "db_connections",
                  "queue_depth", "workers", "redis_memory_bytes", "db_size_bytes")  # fmt: skip
HOST_SERIES = ("cpu_percent", "memory_percent", "disk_percent", "load_1", "process_rss_bytes", "sockets")


def _epoch(at: datetime) -> int:
    return int(at.timestamp())


def known_hosts(*, since: datetime) -> list[str]:
    rows = MetricSnapshot.objects.filter(resolution=Resolution.MINUTE, taken_at__gte=since).exclude(host=CLUSTER)
    return sorted(set(rows.values_list("host", flat=True).distinct()))


def dashboard_series(*, range_key: str, hosts: list[str] | None = None, now: datetime | None = None) -> dict[str, Any]:
    """Columns ready for charting: ``t`` (epoch seconds) and one list per figure, per host."""
    chosen = RANGES[range_key]
    now = now or timezone.now()
    since = now - chosen.span
    rows = MetricSnapshot.objects.filter(resolution=chosen.resolution, taken_at__gte=since)
    if hosts:
        rows = rows.filter(host__in=[*hosts, CLUSTER])
    cluster: dict[str, list[Any]] = {"t": [], **{name: [] for name in CLUSTER_SERIES}}
    per_host: dict[str, dict[str, list[Any]]] = defaultdict(lambda: {"t": [], **{n: [] for n in HOST_SERIES}})
    for row in rows.order_by("taken_at").values_list("host", "taken_at", *CLUSTER_SERIES, *HOST_SERIES).iterator():
        host, taken_at = row[0], _epoch(row[1])
        if host == CLUSTER:
            cluster["t"].append(taken_at)
            for name, value in zip(CLUSTER_SERIES, row[2 : 2 + len(CLUSTER_SERIES)], strict=True):
                cluster[name].append(value)
        else:
            series = per_host[host]
            series["t"].append(taken_at)
            for name, value in zip(HOST_SERIES, row[2 + len(CLUSTER_SERIES) :], strict=True):
                series[name].append(value)
    return {
        "range": chosen.key,
        "resolution": chosen.resolution,
        "since": _epoch(since),
        "until": _epoch(now),
        "cluster": cluster,
        "hosts": dict(sorted(per_host.items())),
        "restaurants": restaurant_series(resolution=chosen.resolution, since=since),
    }


def restaurant_series(*, resolution: int, since: datetime) -> dict[str, dict[str, list[Any]]]:
    rows = (
        RestaurantSnapshot.objects.filter(resolution=resolution, taken_at__gte=since)
        .order_by("taken_at")
        .values_list("restaurant__slug", "taken_at", "orders", "revenue")
    )
    series: dict[str, dict[str, list[Any]]] = defaultdict(lambda: {"t": [], "orders": [], "revenue": []})
    for slug, taken_at, orders, revenue in rows.iterator():
        entry = series[slug]
        entry["t"].append(_epoch(taken_at))
        entry["orders"].append(orders)
        entry["revenue"].append(float(revenue))
    return dict(sorted(series.items()))


def recent_backups(limit: int = 8) -> list[dict[str, Any]]:
    from backups.models import Backup

    rows = Backup.objects.order_by("-started_at")[:limit]
    return [
        {"id": b.pk, "status": b.status, "reason": b.reason, "started_at": b.started_at.isoformat(),
         "size_bytes": b.size_bytes, "verified_at": b.verified_at.isoformat() if b.verified_at else None,
         "error": b.error[:200]}
        for b in rows
    ]  # fmt: skip


def recent_task_runs(limit: int = 20) -> list[dict[str, Any]]:
    """The scheduled jobs with their last run, newest first."""
    from django_celery_beat.models import PeriodicTask

    tasks = PeriodicTask.objects.exclude(name__startswith="celery.").order_by("-last_run_at", "name")[:limit]
    return [
        {"name": t.name, "task": t.task, "enabled": t.enabled, "runs": t.total_run_count,
         "last_run_at": t.last_run_at.isoformat() if t.last_run_at else None}
        for t in tasks
    ]  # fmt: skip


def dashboard_tables(*, minutes: int = 60) -> dict[str, Any]:
    from .queries import n_plus_one_suspects, top_queries

    errors = FrontendErrorGroup.objects.select_related("restaurant").order_by("-last_seen")[:10]
    return {
        "slow_queries": top_queries(minutes, limit=10),
        "n_plus_one": n_plus_one_suspects(minutes)[:10],
        "frontend_errors": [
            {
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
        "task_runs": recent_task_runs(),
    }


def dashboard_tiles() -> dict[str, Any]:
    """The headline figures: the admin index's tiles and the dashboard's live frame."""
    from backups.selectors import newest_verified
    from realtime.presence import presence_summary

    from .health import detailed_report
    from .selectors import orders_today, traffic_summary

    status, _report = detailed_report()
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
    return [
        {"key": "health", "label": "Health", "value": tiles["health"], "href": reverse("health-detailed"),
         "state": {"healthy": "ok", "degraded": "warn"}.get(tiles["health"], "bad")},
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
    ]  # fmt: skip


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
