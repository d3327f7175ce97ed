"""Metric snapshots: one row per live host and one for the installation, every minute.

The minute recorded is the last one every node has surely reported in full (its request
tallies reach its node report within one flush and one report interval), so a row is written
once with complete figures and never revised. Hour rows are rolled up from minute rows, and
six-hour rows from hour rows, with percentiles taken from the merged latency histograms, never
by averaging percentiles. Both
are pruned in small batches so no delete holds a long lock.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Max, Model, QuerySet, Sum
from django.utils import timezone

from common.clock import floor_to
from common.redis import get_redis
from monitoring.health.celery_state import queue_depth
from monitoring.history.models import CLUSTER, MetricSnapshot, Resolution, RestaurantSnapshot
from monitoring.nodes.models import NodeReport
from monitoring.nodes.reports import live_nodes_by_host, newest, reported_traffic
from monitoring.requests.traffic import Tally, stats_of
from realtime.selectors import order_totals, restaurant_ids, service_minute

log = logging.getLogger(__name__)

GAUGES = ("cpu_percent", "memory_percent", "disk_percent", "load_1", "process_rss_bytes", "open_files",
          "sockets", "db_connections", "db_size_bytes", "redis_memory_bytes", "redis_clients",
          "queue_depth", "workers", "nodes")  # fmt: skip
COUNTS = ("requests", "errors", "slow_requests")
PRUNE_BATCH = 5000
ROLLUPS = [(Resolution.MINUTE, Resolution.HOUR), (Resolution.HOUR, Resolution.SIX_HOURS)]


def settled_minute(now: datetime) -> datetime:
    """The newest minute whose request tallies every live node has already reported."""
    lag = timedelta(seconds=settings.OPSITE_SNAPSHOT_LAG_S)
    return floor_to(now - lag, 60) - timedelta(minutes=1)


def _traffic_fields(tally: Tally, seconds: int) -> dict[str, Any]:
    stats = stats_of(tally, seconds)  # the same arithmetic as every other reader of traffic
    return {
        "requests": stats.requests,
        "errors": tally.errors,
        "slow_requests": stats.slow,
        "request_rate": stats.rate_per_s,
        "error_rate": stats.error_rate,
        "p50_ms": stats.p50_ms,
        "p95_ms": stats.p95_ms,
        "p99_ms": stats.p99_ms,
        "latency_histogram": {str(k): v for k, v in sorted(tally.buckets.items())},
    }


def _host_row(host: str, reports: list[NodeReport], minute: int) -> dict[str, Any]:
    latest = newest(reports).figures
    return {
        "host": host,
        "nodes": len(reports),
        **{name: latest.get(name) for name in ("cpu_percent", "memory_percent", "disk_percent", "load_1")},
        "process_rss_bytes": sum(r.figures.get("process_rss_bytes", 0) for r in reports),
        "open_files": sum(r.figures.get("open_files", 0) for r in reports),
        "sockets": sum(r.figures.get("sockets", 0) for r in reports),
        **_traffic_fields(reported_traffic(reports, {minute}), 60),
    }


def database_figures() -> dict[str, int | None]:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT (SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()),"
                " pg_database_size(current_database())"
            )
            connections, size = cursor.fetchone()
        return {"db_connections": connections, "db_size_bytes": size}
    if connection.vendor == "sqlite":
        path = Path(str(connection.settings_dict["NAME"]))
        size = sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())
        return {"db_connections": None, "db_size_bytes": size}
    return {"db_connections": None, "db_size_bytes": None}


def redis_figures() -> dict[str, int | None]:
    client = get_redis()
    if client is None:
        return {"redis_memory_bytes": None, "redis_clients": None}
    try:
        info = client.info()
    except Exception as exc:
        log.warning("snapshot without Redis figures: %s", exc)
        return {"redis_memory_bytes": None, "redis_clients": None}
    return {"redis_memory_bytes": int(info["used_memory"]), "redis_clients": int(info["connected_clients"])}


def _cluster_row(host_rows: list[dict[str, Any]], reports: list[NodeReport], minute: int) -> dict[str, Any]:
    return {
        "host": CLUSTER,
        "nodes": len(reports),
        "process_rss_bytes": sum(r["process_rss_bytes"] for r in host_rows),
        "open_files": sum(r["open_files"] for r in host_rows),
        "sockets": sum(r["sockets"] for r in host_rows),
        "workers": sum(1 for r in reports if r.role == "worker"),
        "queue_depth": queue_depth(),
        **database_figures(),
        **redis_figures(),
        **_traffic_fields(reported_traffic(reports, {minute}), 60),
    }


@dataclass
class SnapshotResult:
    taken_at: datetime
    hosts: list[str]
    restaurants: int


def _upsert(model: type[Model], rows: Iterable[Model], unique: list[str]) -> None:
    rows = list(rows)
    if not rows:
        return
    fields = [f.name for f in model._meta.concrete_fields if not f.primary_key and f.name not in unique]
    model._default_manager.bulk_create(rows, update_conflicts=True, unique_fields=unique, update_fields=fields)


def _restaurant_minute_rows(start: datetime) -> list[RestaurantSnapshot]:
    totals = order_totals(since=start, until=start + timedelta(minutes=1))
    ids = restaurant_ids(totals)
    rows: dict[int, dict[str, Any]] = {ids[slug]: {"orders": t["orders"], "paid": t["paid"], "revenue": t["revenue"]}
                                       for slug, t in totals.items() if slug in ids}  # fmt: skip
    for restaurant_id, levels in service_minute(start).items():
        rows.setdefault(restaurant_id, {}).update(levels)
    return [RestaurantSnapshot(resolution=Resolution.MINUTE, taken_at=start, restaurant_id=restaurant_id, **fields)
            for restaurant_id, fields in rows.items()]  # fmt: skip


def snapshot_collect(*, now: datetime | None = None) -> SnapshotResult:
    """Record the settled minute for every live node's host and for the installation; idempotent."""
    now = now or timezone.now()
    minute = settled_minute(now)
    epoch_minute = int(minute.timestamp()) // 60
    by_host = live_nodes_by_host(now=now)
    reports = [report for host_reports in by_host.values() for report in host_reports]
    host_rows = [_host_row(host, rs, epoch_minute) for host, rs in by_host.items()]
    rows = [*host_rows, _cluster_row(host_rows, reports, epoch_minute)]
    restaurants = _restaurant_minute_rows(minute)
    with transaction.atomic():
        _upsert(MetricSnapshot, (MetricSnapshot(resolution=Resolution.MINUTE, taken_at=minute, **row) for row in rows),
                ["resolution", "host", "taken_at"])  # fmt: skip
        _upsert(RestaurantSnapshot, restaurants, ["resolution", "restaurant", "taken_at"])
    return SnapshotResult(taken_at=minute, hosts=sorted(by_host), restaurants=len(restaurants))


def _mean(values: list[float]) -> float:
    return math.fsum(values) / len(values)


def rollup_rows(rows: list[dict[str, Any]], seconds: int) -> dict[str, Any]:
    """One row over ``seconds`` from one host's finer rows: gauges as mean with [min, max] (the
    finer rows' own [min, max] when they have one), counts summed, percentiles from the summed
    histograms."""
    rolled: dict[str, Any] = {"spread": {}}
    for name in GAUGES:
        values = [r[name] for r in rows if r[name] is not None]
        if not values:
            rolled[name] = None
            continue
        mean = _mean(values)
        rolled[name] = round(mean) if isinstance(values[0], int) else mean
        lows = [r["spread"][name][0] if name in r["spread"] else r[name] for r in rows if r[name] is not None]
        highs = [r["spread"][name][1] if name in r["spread"] else r[name] for r in rows if r[name] is not None]
        rolled["spread"][name] = [min(lows), max(highs)]
    merged = Tally()
    for row in rows:
        merged.buckets.update({int(k): v for k, v in row["latency_histogram"].items()})
    merged.count = sum(r["requests"] for r in rows)
    merged.errors = sum(r["errors"] for r in rows)
    merged.slow = sum(r["slow_requests"] for r in rows)
    rolled.update(_traffic_fields(merged, seconds))
    rolled["nodes"] = max((r["nodes"] for r in rows), default=0)
    return rolled


SUMMED = ("orders", "paid", "revenue", "deliveries", "deliveries_late", "acks", "acks_late", "open_s", "connected_s")


def _restaurant_rollup(source: int, target: int, start: datetime) -> list[RestaurantSnapshot]:
    finer = RestaurantSnapshot.objects.filter(
        resolution=source, taken_at__gte=start, taken_at__lt=start + timedelta(seconds=target)
    )
    sums = finer.values("restaurant_id").annotate(**{name: Sum(name) for name in SUMMED}).order_by()
    return [
        RestaurantSnapshot(resolution=target, taken_at=start, restaurant_id=row["restaurant_id"],
                           **{name: row[name] for name in SUMMED})
        for row in sums
    ]  # fmt: skip


def _rollup_period(source: int, target: int, start: datetime) -> bool:
    end = start + timedelta(seconds=target)
    fields = ["host", *GAUGES, *COUNTS, "latency_histogram", "spread"]
    per_host: dict[str, list[dict[str, Any]]] = defaultdict(list)
    finer = MetricSnapshot.objects.filter(resolution=source, taken_at__gte=start, taken_at__lt=end)
    for row in finer.values(*fields):
        per_host[row["host"]].append(row)
    if not per_host:
        return False
    with transaction.atomic():
        _upsert(MetricSnapshot,
                (MetricSnapshot(resolution=target, taken_at=start, host=host, **rollup_rows(rows, target))
                 for host, rows in per_host.items()),
                ["resolution", "host", "taken_at"])  # fmt: skip
        _upsert(RestaurantSnapshot, _restaurant_rollup(source, target, start), ["resolution", "restaurant", "taken_at"])
    return True


def _rollup_level(source: int, target: int, until: datetime) -> int:
    """Roll up every finished ``target`` period that has ``source`` rows and no row of its own."""
    latest = MetricSnapshot.objects.filter(resolution=target).aggregate(at=Max("taken_at"))["at"]
    finer = MetricSnapshot.objects.filter(resolution=source, taken_at__lt=until)
    if latest is not None:
        finer = finer.filter(taken_at__gte=latest + timedelta(seconds=target))
    first = finer.order_by("taken_at").values_list("taken_at", flat=True).first()
    if first is None:
        return 0
    period, done = floor_to(first, target), 0
    while period < until:
        done += _rollup_period(source, target, period)
        period += timedelta(seconds=target)
    return done


def snapshot_rollup(*, now: datetime | None = None) -> dict[str, int]:
    """Minute rows into hour rows, hour rows into six-hour rows, for every finished period
    not rolled up yet; return how many periods of each were written."""
    now = now or timezone.now()
    final_until = settled_minute(now) + timedelta(minutes=1)  # rows before this are final
    done: dict[str, int] = {}
    for source, target in ROLLUPS:
        final_until = floor_to(final_until, target)
        done[Resolution(target).label] = _rollup_level(source, target, final_until)
    return done


def _prune(queryset: QuerySet[Any]) -> int:
    deleted = 0
    while True:
        ids = list(queryset.values_list("pk", flat=True)[:PRUNE_BATCH])
        if not ids:
            return deleted
        deleted += queryset.model._default_manager.filter(pk__in=ids).delete()[0]


def snapshot_prune(*, now: datetime | None = None) -> dict[str, int]:
    """Delete minute rows and hour / six-hour rows past their retention, and node reports long expired."""
    now = now or timezone.now()
    minute_cut = now - timedelta(days=settings.OPSITE_SNAPSHOT_MINUTE_DAYS)
    hour_cut = now - timedelta(days=settings.OPSITE_SNAPSHOT_HOUR_DAYS)
    deleted: dict[str, int] = {}
    for label, model in (("metric", MetricSnapshot), ("restaurant", RestaurantSnapshot)):
        manager = model._default_manager
        deleted[f"{label}_minute"] = _prune(manager.filter(resolution=Resolution.MINUTE, taken_at__lt=minute_cut))
        coarse = manager.filter(resolution__in=[Resolution.HOUR, Resolution.SIX_HOURS], taken_at__lt=hour_cut)
        deleted[f"{label}_hour"] = _prune(coarse)
    deleted["nodes"] = _prune(NodeReport.objects.filter(expires_at__lt=now - timedelta(days=1)))
    return deleted
