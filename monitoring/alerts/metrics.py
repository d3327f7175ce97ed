"""What alert rules can watch: each metric reads its current values per label set.

A reader gets the scope (overall, per host, per restaurant) and the window in seconds, and
returns ``{labels: value}``; ``None`` as a value means no data. The evaluator reads each
(metric, scope, window) once per evaluation, however many rules share it, which is what makes
hundreds of rules cheap. ``reads_database`` marks the metrics held (not evaluated) while the
database is down.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, Q, Sum

from backups.pitr import archiver_lag_s
from backups.selectors import (
    archive_gap_count,
    base_backups_exist,
    last_finished_failed,
    newest_verified_age_s,
    passed_drill_age_s,
)
from monitoring.alerts.catalog import CATALOG, MetricInfo
from monitoring.health import dependencies
from monitoring.health.celery_state import queue_depth
from monitoring.health.probes import DEGRADED, HEALTHY, UNHEALTHY, check_database_down, last_status
from monitoring.health.selectors import EVALUATOR, beat_heartbeat_age_s, heartbeat_age_s
from monitoring.history.models import Resolution, RestaurantSnapshot
from monitoring.history.service_levels import service_levels
from monitoring.ledger.models import TaskRun
from monitoring.nodes.reports import live_nodes_by_host, newest, reported_traffic
from monitoring.requests.traffic import ALL_ROUTES, FRONTEND_ERRORS, stats_of, window
from realtime.selectors import events_between, late_tickets, presence_summary, restaurant_slugs

Labels = tuple[tuple[str, str], ...]
Values = dict[Labels, float | None]
OVERALL: Labels = ()
NEVER = 1e9  # "never happened" reads as a very old age, so an age rule fires


@dataclass(frozen=True)
class Reading:
    scope: str
    window_s: int
    now: datetime


@dataclass(frozen=True)
class Metric(MetricInfo):
    """A metric's facts (``monitoring.alerts.catalog``) and the function that reads it."""

    read: Callable[[Reading], Values] = field(kw_only=True)


def _minutes(window_s: int) -> int:
    return max(1, math.ceil(window_s / 60))


def _traffic(reading: Reading, figure: str) -> Values:
    if reading.scope == "overall":
        stats = window(_minutes(reading.window_s))[ALL_ROUTES]
        return {OVERALL: _figure(stats.requests, stats.error_rate, stats.p95_ms, figure)}
    newest = int(reading.now.timestamp()) // 60
    minutes = set(range(newest - _minutes(reading.window_s) + 1, newest + 1))
    result: Values = {}
    for host, reports in live_nodes_by_host(now=reading.now).items():
        stats = stats_of(reported_traffic(reports, minutes), reading.window_s)
        if stats.requests:
            result[(("host", host),)] = _figure(stats.requests, stats.error_rate, stats.p95_ms, figure)
    return result


def _figure(requests: int, error_rate: float, p95: float | None, figure: str) -> float | None:
    if figure == "error_rate":
        return error_rate * 100 if requests else 0.0
    return p95  # None without requests: no data


def _host_figure(reading: Reading, name: str) -> Values:
    values: Values = {(("host", host),): newest(reports).figures.get(name)
                      for host, reports in live_nodes_by_host(now=reading.now).items()}  # fmt: skip
    if reading.scope == "overall":
        known = [v for v in values.values() if v is not None]
        return {OVERALL: max(known) if known else None}
    return values


def _queue_depth(reading: Reading) -> Values:
    depth = queue_depth()
    return {OVERALL: None if depth is None else float(depth)}


def _beat_age(reading: Reading) -> Values:
    age = beat_heartbeat_age_s()
    return {OVERALL: NEVER if age is None else age}


def _evaluator_age(reading: Reading) -> Values:
    age = heartbeat_age_s(EVALUATOR)
    return {OVERALL: NEVER if age is None else age}


def _backup_age(reading: Reading) -> Values:
    age = newest_verified_age_s()
    return {OVERALL: NEVER if age is None else age}


def _backup_failed(reading: Reading) -> Values:
    return {OVERALL: 1.0 if last_finished_failed() else 0.0}


def _restore_drill_age(reading: Reading) -> Values:
    """Only where point-in-time recovery is in use (a base backup exists): else 0, never firing."""
    if not base_backups_exist():
        return {OVERALL: 0.0}
    age = passed_drill_age_s()
    return {OVERALL: NEVER if age is None else age}


def _wal_archive_lag(reading: Reading) -> Values:
    lag = archiver_lag_s()
    return {OVERALL: 0.0 if lag is None else NEVER if math.isinf(lag) else lag}


def _wal_archive_gaps(reading: Reading) -> Values:
    return {OVERALL: float(archive_gap_count())}


def _sockets(reading: Reading) -> Values:
    summary = presence_summary()
    if reading.scope == "overall":
        return {OVERALL: float(summary["total"])}
    per_host: dict[str, float] = defaultdict(float)
    for node, n in summary["by_node"].items():
        per_host[node.split(":", 1)[0]] += n
    return {(("host", h),): n for h, n in per_host.items()}


def _events(reading: Reading) -> Any:
    return events_between(reading.now - timedelta(seconds=reading.window_s), reading.now)


def _restaurants() -> dict[int, str]:
    return restaurant_slugs()


def _orders_per_minute(reading: Reading) -> Values:
    created = _events(reading).filter(type="order.created")
    minutes = reading.window_s / 60
    if reading.scope == "overall":
        return {OVERALL: created.count() / minutes}
    counts = dict(created.values_list("restaurant_id").annotate(n=Count("id")).order_by())
    return {(("restaurant", slug),): counts.get(pk, 0) / minutes for pk, slug in _restaurants().items()}


def _orders_vs_normal(reading: Reading) -> Values:
    """Orders per minute now as a percentage of the same hour of day over the last 7 days
    (from the hour snapshots); no data without that history."""

    current = _orders_per_minute(Reading("restaurant", reading.window_s, reading.now))
    hour = reading.now.replace(minute=0, second=0, microsecond=0)
    same_hours = [hour - timedelta(days=d) for d in range(1, 8)]
    totals = dict(
        RestaurantSnapshot.objects.filter(resolution=Resolution.HOUR, taken_at__in=same_hours)
        .values_list("restaurant__slug").annotate(orders=Sum("orders")).order_by()
    )  # fmt: skip
    result: Values = {}
    for labels, now_rate in current.items():
        normal = (totals.get(labels[0][1]) or 0) / (len(same_hours) * 60)
        result[labels] = None if normal <= 0 or now_rate is None else now_rate / normal * 100
    return result


def _failed_payments(reading: Reading) -> Values:
    """Failed payment attempts (``order.updated`` events with ``data.payment_status = "failed"``)
    as a percentage of attempts (those plus ``order.paid``); 0 without attempts."""
    failed_q = Q(type="order.updated", data__payment_status="failed")
    rows = (
        _events(reading).filter(failed_q | Q(type="order.paid"))
        .values_list("restaurant_id").annotate(failed=Count("id", filter=failed_q), n=Count("id")).order_by()
    )  # fmt: skip
    per_restaurant = {pk: (failed, n) for pk, failed, n in rows}
    if reading.scope == "overall":
        failed = sum(f for f, _ in per_restaurant.values())
        attempts = sum(n for _, n in per_restaurant.values())
        return {OVERALL: failed / attempts * 100 if attempts else 0.0}
    return {
        (("restaurant", slug),): (per_restaurant[pk][0] / per_restaurant[pk][1] * 100) if pk in per_restaurant else 0.0
        for pk, slug in _restaurants().items()
    }


def _frontend_errors(reading: Reading) -> Values:
    stats = window(_minutes(reading.window_s), namespace=FRONTEND_ERRORS)
    if reading.scope == "overall":
        return {OVERALL: stats[ALL_ROUTES].requests / (reading.window_s / 60)}
    return {(("restaurant", slug),): s.requests / (reading.window_s / 60)
            for slug, s in stats.items() if slug != ALL_ROUTES}  # fmt: skip


def _task_runs(reading: Reading, status: str) -> Values:
    since = reading.now - timedelta(seconds=reading.window_s)
    return {OVERALL: float(TaskRun.objects.filter(status=status, scheduled_for__gte=since).count())}


def _database_down(reading: Reading) -> Values:
    return {OVERALL: 1.0 if check_database_down() else 0.0}


def _dependency_down(reading: Reading) -> Values:
    results = dependencies.check_all()
    storage = dependencies.check_backup_storage()
    if storage is not None:
        results.append(storage)
    down = {row["name"]: 0.0 if row["status"] == "ok" else 1.0 for row in results}
    if reading.scope == "overall":
        return {OVERALL: sum(down.values())}
    return {(("dependency", name),): value for name, value in down.items()}


def _tickets(reading: Reading, figure: str) -> Values:
    late = late_tickets(reading.now)
    if reading.scope == "overall":
        return {OVERALL: sum(figures[figure] for figures in late.values())}
    return {(("restaurant", slug),): figures[figure] for slug, figures in late.items()}


def _burn(reading: Reading, kind: str, speed: str) -> Values:
    """A restaurant's SLO burn rate (overall: the highest); None without events in a window."""
    burns = {slug: levels[kind][f"burn_{speed}"] for slug, levels in service_levels(reading.now, budgets=False).items()}
    if reading.scope == "overall":
        return {OVERALL: max((b for b in burns.values() if b is not None), default=None)}
    return {(("restaurant", slug),): burn for slug, burn in burns.items()}


def _health_status(reading: Reading) -> Values:
    """The newest detailed report's overall status on any process (computed when none is kept)."""
    status = last_status(compute=True)
    return {OVERALL: None if status is None else HEALTH_LEVELS.get(status)}


HEALTH_LEVELS = {HEALTHY: 0.0, DEGRADED: 1.0, UNHEALTHY: 2.0}

_READERS: dict[str, Callable[[Reading], Values]] = {
    "error_rate": lambda r: _traffic(r, "error_rate"),
    "p95_ms": lambda r: _traffic(r, "p95_ms"),
    "cpu_percent": lambda r: _host_figure(r, "cpu_percent"),
    "memory_percent": lambda r: _host_figure(r, "memory_percent"),
    "disk_percent": lambda r: _host_figure(r, "disk_percent"),
    "queue_depth": _queue_depth,
    "beat_heartbeat_age_s": _beat_age,
    "alert_evaluator_age_s": _evaluator_age,
    "backup_age_s": _backup_age,
    "backup_failed": _backup_failed,
    "restore_drill_age_s": _restore_drill_age,
    "wal_archive_lag_s": _wal_archive_lag,
    "wal_archive_gaps": _wal_archive_gaps,
    "sockets": _sockets,
    "orders_per_minute": _orders_per_minute,
    "orders_vs_normal_pct": _orders_vs_normal,
    "failed_payment_pct": _failed_payments,
    "frontend_errors_per_minute": _frontend_errors,
    "task_missed_runs": lambda r: _task_runs(r, "missed"),
    "task_duplicate_runs": lambda r: _task_runs(r, "duplicate"),
    "database_down": _database_down,
    "dependency_down": _dependency_down,
    "health_status": _health_status,
    "tickets_late": lambda r: _tickets(r, "late"),
    "tickets_very_late": lambda r: _tickets(r, "very_late"),
    "delivery_burn_fast": lambda r: _burn(r, "delivery", "fast"),
    "delivery_burn_slow": lambda r: _burn(r, "delivery", "slow"),
    "connected_burn_fast": lambda r: _burn(r, "connected", "fast"),
    "connected_burn_slow": lambda r: _burn(r, "connected", "slow"),
}
METRICS: dict[str, Metric] = {key: Metric(**vars(info), read=_READERS[key]) for key, info in CATALOG.items()}
