"""The rules a fresh install starts with: created after ``migrate`` when there are no rules at
all, so whatever an admin later edits or deletes stays that way."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from monitoring.alerts.models import AlertRule, NotificationChannel, Severity


@dataclass(frozen=True)
class DefaultRule:
    name: str
    metric: str
    threshold: float
    scope: str = "overall"
    recovery: float | None = None
    window_s: int = 300
    for_s: int = 60
    severity: str = Severity.WARNING
    description: str = ""
    comparison: str = AlertRule.Comparison.ABOVE


# The heartbeat job runs every 15 s: a heartbeat 45 s old is three missed beats, and the
# watchdog sees it within its period, so this fires well within a minute of beat stopping.
BEAT_RULE = "Beat heartbeat older than 45 seconds"
BEAT_RULE_THRESHOLD_S = 45

DEPENDENCY_RULE = "Dependency failing"
HEALTH_RULE = "Health not healthy for 10 minutes"
HEALTH_DEGRADED_FOR_S = 600
TICKETS_LATE_RULE = "Orders late"
TICKETS_VERY_LATE_RULE = "Orders very late"

# Multiwindow burn-rate alerts (the SRE workbook's): fast pages when 2 % of a 30-day budget goes
# in an hour (14.4x over 1 h and 5 min), slow warns when 5 % goes in six hours (6x over 6 h and 30 min).
SLO_RULES = [
    DefaultRule(
        f"{what} SLO burning {speed}",
        f"{kind}_burn_{speed}",
        threshold,
        scope="restaurant",
        recovery=threshold * 0.8,
        window_s=60,
        for_s=for_s,
        severity=severity,
        description=f"{what}: the restaurant's error budget is being spent {threshold:g} times as fast as "
        f"its objective allows ({windows}); see its service levels on /ops/.",
    )
    for kind, what in (("delivery", "Order delivery"), ("connected", "Boards connected"))
    for speed, threshold, for_s, severity, windows in (
        ("fast", 14.4, 120, Severity.CRITICAL, "over both the last hour and 5 minutes"),
        ("slow", 6.0, 900, Severity.WARNING, "over both the last 6 hours and 30 minutes"),
    )
]

# Point-in-time recovery (inactive while no base backup or archiver slot exists); the same text
# stands in the migration that adds them to installs that already have rules.
PITR_RULES = [
    DefaultRule("No passed restore drill in 8 days", "restore_drill_age_s", 8 * 86400, for_s=0,
                description="The weekly restore drill has not passed for 8 days: a point-in-time restore is "
                            "not known to work. Admin → Restore drills shows the last one's error."),
    DefaultRule("WAL archiving behind", "wal_archive_lag_s", 60, recovery=30, for_s=120, severity=Severity.CRITICAL,
                description="The WAL archiver (manage.py wal_archive) trails the server by over a minute, or its "
                            "slot exists and nothing streams from it: a restore would lose what it has not got."),
    DefaultRule("WAL archive has a gap", "wal_archive_gaps", 1, recovery=0.5, for_s=0, severity=Severity.CRITICAL,
                comparison=AlertRule.Comparison.AT_LEAST,
                description="A segment is missing between the oldest and the newest archived: a restore cannot "
                            "replay past it. manage.py pitr_status names it; take a new base backup."),
]  # fmt: skip

DEFAULT_RULES = [
    DefaultRule("Error rate above 5 %", "error_rate", 5, recovery=4, for_s=60, severity=Severity.CRITICAL,
                description="More than 5 % of requests were answered with a 5xx."),
    DefaultRule("p95 latency above 1 s", "p95_ms", 1000, recovery=800, for_s=120,
                description="The slowest 5 % of requests took more than a second."),
    DefaultRule("CPU above 90 %", "cpu_percent", 90, scope="host", recovery=80, for_s=300),
    DefaultRule("Memory above 90 %", "memory_percent", 90, scope="host", recovery=85, for_s=300),
    DefaultRule("Disk above 90 %", "disk_percent", 90, scope="host", recovery=88, for_s=0, severity=Severity.CRITICAL),
    DefaultRule(BEAT_RULE, "beat_heartbeat_age_s", BEAT_RULE_THRESHOLD_S, for_s=0, severity=Severity.CRITICAL,
                description="Celery beat (or every worker) has stopped: no job runs. Evaluated by the watchdog "
                            "of the web and worker processes while beat is down."),
    DefaultRule("Alert evaluation late", "alert_evaluator_age_s", 45, for_s=0, severity=Severity.CRITICAL,
                description="The scheduled alert evaluation has not finished for 45 s (beat down, no worker, "
                            "or stuck): the watchdog evaluates meanwhile."),
    DefaultRule("No verified backup in 26 hours", "backup_age_s", 26 * 3600, for_s=0, severity=Severity.CRITICAL),
    *PITR_RULES,
    DefaultRule("Database unreachable", "database_down", 1, recovery=0.5, window_s=60, for_s=0,
                severity=Severity.CRITICAL, comparison=AlertRule.Comparison.AT_LEAST,
                description="While it fires, rules that read the database are held."),
    DefaultRule(DEPENDENCY_RULE, "dependency_down", 1, scope="dependency", recovery=0.5, window_s=60, for_s=120,
                comparison=AlertRule.Comparison.AT_LEAST,
                description="An external service in OPSITE_DEPENDENCIES, or the S3 backup store, has failed its "
                            "check for 2 minutes; /health/dependencies shows the error and the circuit."),
    DefaultRule(HEALTH_RULE, "health_status", 1, recovery=0.5, window_s=60, for_s=HEALTH_DEGRADED_FOR_S,
                comparison=AlertRule.Comparison.AT_LEAST,
                description="/health/detailed has not been healthy for 10 minutes; it names the checks that "
                            "are not ok (manage.py monitor --once prints them)."),
    DefaultRule(TICKETS_LATE_RULE, "tickets_late", 1, scope="restaurant", recovery=0.5, window_s=60, for_s=0,
                comparison=AlertRule.Comparison.AT_LEAST,
                description="Open orders are past the restaurant's expected ticket time plus its late threshold "
                            "(by default 15 + 5 minutes; set per restaurant in the admin)."),
    DefaultRule(TICKETS_VERY_LATE_RULE, "tickets_very_late", 1, scope="restaurant", recovery=0.5, window_s=60,
                for_s=0, severity=Severity.CRITICAL, comparison=AlertRule.Comparison.AT_LEAST,
                description="Open orders are past the restaurant's expected ticket time plus its very-late "
                            "threshold (by default 15 + 7 minutes)."),
    *SLO_RULES,
    DefaultRule("Scheduled runs missed", "task_missed_runs", 0, window_s=3600, for_s=0),
    DefaultRule("Scheduled runs duplicated", "task_duplicate_runs", 0, window_s=3600, for_s=0),
]  # fmt: skip


def ensure_default_rules() -> int:
    """Create the default rules on an install that has no rules yet; return how many."""
    if AlertRule.objects.exists():
        return 0
    channel = None
    if settings.OPSITE_ALERT_EMAILS:
        channel, _ = NotificationChannel.objects.get_or_create(
            name="Operators by email",
            defaults={"kind": NotificationChannel.Kind.EMAIL, "target": ",".join(settings.OPSITE_ALERT_EMAILS)},
        )
    for spec in DEFAULT_RULES:
        rule = AlertRule.objects.create(
            name=spec.name, metric=spec.metric, scope=spec.scope, threshold=spec.threshold,
            comparison=spec.comparison,
            recovery_threshold=spec.recovery, window_s=spec.window_s, for_s=spec.for_s, severity=spec.severity,
            description=spec.description,
        )  # fmt: skip
        if channel is not None:
            rule.channels.add(channel)
    return len(DEFAULT_RULES)
