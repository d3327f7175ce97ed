"""What alert rules can watch, as facts: each metric's key, label, unit, the scopes it can be
watched at (overall, per host, per restaurant), whether it is read over a window or is a
current value, and whether reading it needs the database (such rules are held, not evaluated,
while the database is down). The readers are in ``monitoring.alerts.metrics``; this module
imports nothing of the project, so a rule can be validated against it anywhere."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MetricInfo:
    key: str
    label: str
    unit: str
    scopes: tuple[str, ...]
    reads_database: bool = False
    windowed: bool = True  # False: a current value, the same for every window


OVERALL_ONLY = ("overall",)
HOSTS = ("overall", "host")
RESTAURANTS = ("overall", "restaurant")
CATALOG: dict[str, MetricInfo] = {
    m.key: m
    for m in (
        MetricInfo("error_rate", "HTTP error rate (5xx)", "%", HOSTS),
        MetricInfo("p95_ms", "p95 request latency", "ms", HOSTS),
        MetricInfo("cpu_percent", "CPU use", "%", HOSTS, windowed=False),
        MetricInfo("memory_percent", "memory use", "%", HOSTS, windowed=False),
        MetricInfo("disk_percent", "data disk use", "%", HOSTS, windowed=False),
        MetricInfo("queue_depth", "Celery queue depth", "messages", OVERALL_ONLY, windowed=False),
        MetricInfo(
            "beat_heartbeat_age_s", "beat heartbeat age", "s", OVERALL_ONLY, reads_database=True, windowed=False
        ),
        MetricInfo(
            "alert_evaluator_age_s",
            "time since the scheduled alert evaluation ran",
            "s",
            OVERALL_ONLY,
            reads_database=True,
            windowed=False,
        ),
        MetricInfo(
            "backup_age_s", "age of the newest verified backup", "s", OVERALL_ONLY, reads_database=True, windowed=False
        ),
        MetricInfo(
            "backup_failed",
            "newest backup or verification failed",
            "1 = yes",
            OVERALL_ONLY,
            reads_database=True,
            windowed=False,
        ),
        MetricInfo(
            "restore_drill_age_s",
            "age of the newest passed restore drill (0 without PITR)",
            "s",
            OVERALL_ONLY,
            reads_database=True,
            windowed=False,
        ),
        MetricInfo(
            "wal_archive_lag_s",
            "WAL archiver's flush lag (1e9: its slot exists, nothing streams; 0 without)",
            "s",
            OVERALL_ONLY,
            reads_database=True,
            windowed=False,
        ),
        MetricInfo(
            "wal_archive_gaps", "WAL segments missing from the archive", "segments", OVERALL_ONLY, windowed=False
        ),
        MetricInfo("sockets", "open staff sockets", "sockets", HOSTS, windowed=False),
        MetricInfo("orders_per_minute", "orders opened per minute", "/min", RESTAURANTS, reads_database=True),
        MetricInfo(
            "orders_vs_normal_pct",
            "orders per minute vs normal for the hour",
            "%",
            ("restaurant",),
            reads_database=True,
        ),
        MetricInfo("failed_payment_pct", "failed payment rate", "%", RESTAURANTS, reads_database=True),
        MetricInfo("frontend_errors_per_minute", "frontend error reports per minute", "/min", RESTAURANTS),
        MetricInfo("task_missed_runs", "missed scheduled runs", "runs", OVERALL_ONLY, reads_database=True),
        MetricInfo("task_duplicate_runs", "duplicate scheduled runs", "runs", OVERALL_ONLY, reads_database=True),
        MetricInfo("database_down", "database unreachable", "1 = yes", OVERALL_ONLY, windowed=False),
        MetricInfo(
            "dependency_down",
            "external dependency failing (each of OPSITE_DEPENDENCIES, and the S3 backup store)",
            "1 = yes; overall: how many",
            ("overall", "dependency"),
            windowed=False,
        ),
        MetricInfo(
            "health_status", "overall health", "0 healthy, 1 degraded, 2 unhealthy", OVERALL_ONLY, windowed=False
        ),
        MetricInfo(
            "tickets_late",
            "open orders past their expected time plus the restaurant's late threshold",
            "orders",
            RESTAURANTS,
            reads_database=True,
            windowed=False,
        ),
        MetricInfo(
            "tickets_very_late",
            "open orders past their expected time plus the restaurant's very-late threshold",
            "orders",
            RESTAURANTS,
            reads_database=True,
            windowed=False,
        ),
        *(
            MetricInfo(
                f"{kind}_burn_{speed}",
                f"{label} error budget burn rate, {windows}",
                "x",
                RESTAURANTS,
                reads_database=True,
                windowed=False,
            )
            for kind, label in (("delivery", "delivery SLO"), ("connected", "boards-connected SLO"))
            for speed, windows in (("fast", "the lower of 1 h and 5 min"), ("slow", "the lower of 6 h and 30 min"))
        ),
    )
}


def scope_problem(metric: str, scope: str) -> dict[str, str]:
    """What is wrong with watching ``metric`` at ``scope`` (field: message); empty when nothing."""
    info = CATALOG.get(metric)
    if info is None:
        return {"metric": f"unknown metric; one of {', '.join(CATALOG)}"}
    if scope not in info.scopes:
        return {"scope": f"{metric} can be watched {', '.join(info.scopes)}"}
    return {}
