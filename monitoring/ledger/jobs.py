"""The scheduled jobs at a glance: one row per job with its last run, its next run and what the
ledger counted for it over the last 24 hours."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, Q
from django.utils import timezone

from monitoring.ledger.models import TaskRun

log = logging.getLogger(__name__)
Status = TaskRun.Status


def _next_run(job: Any, now: datetime) -> datetime | None:
    """When beat sends the job next, from its schedule (None when it cannot be told)."""
    try:
        remaining = job.schedule.remaining_estimate(job.last_run_at or now)
    except Exception:  # a schedule beat itself could not read either
        log.debug("no next run for %s", job.name, exc_info=True)
        return None
    return max(now, now + remaining) if remaining is not None else None


def job_summaries(*, now: datetime | None = None) -> list[dict[str, Any]]:
    from django_celery_beat.models import PeriodicTask

    now = now or timezone.now()
    since = now - timedelta(hours=24)
    counted = {
        row["job"]: row
        for row in TaskRun.objects.filter(scheduled_for__gte=since).values("job").annotate(
            runs=Count("id", filter=Q(status__in=[Status.SUCCEEDED, Status.FAILED, Status.RUNNING])),
            failed=Count("id", filter=Q(status=Status.FAILED)),
            missed=Count("id", filter=Q(status=Status.MISSED)),
            duplicate=Count("id", filter=Q(status=Status.DUPLICATE)),
        ).order_by()
    }  # fmt: skip
    scheduled = {job.name: job for job in PeriodicTask.objects.filter(enabled=True).exclude(name__startswith="celery.")
                 .select_related("interval", "crontab", "solar", "clocked")}  # fmt: skip
    rows = []
    for name in sorted(set(scheduled) | set(counted)):
        last = (TaskRun.objects.filter(job=name).exclude(status__in=[Status.MISSED, Status.DUPLICATE])
                .order_by("-started_at").first())  # fmt: skip
        counts = counted.get(name, {})
        next_run = _next_run(scheduled[name], now) if name in scheduled else None
        rows.append({
            "job": name, "last_started_at": last.started_at.isoformat() if last else None,
            "last_status": last.status if last else None, "last_duration_ms": last.duration_ms if last else None,
            "last_node": last.node if last else "", "next_run_at": next_run.isoformat() if next_run else None,
            "runs_24h": counts.get("runs", 0), "failed_24h": counts.get("failed", 0),
            "missed_24h": counts.get("missed", 0), "duplicate_24h": counts.get("duplicate", 0),
        })  # fmt: skip
    return rows
