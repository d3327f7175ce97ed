"""One place where each capability declares its periodic jobs.

An app lists its jobs in ``<app>/schedules.py`` as ``JOBS = [PeriodicJob(...)]``. After every
``migrate`` the jobs are written into django-celery-beat's tables, where admins can edit them;
a row that already exists is left as the admin set it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import timedelta
from importlib import import_module
from typing import Any

from django.apps import apps as django_apps

from common.migrations import table_exists


@dataclass(frozen=True)
class PeriodicJob:
    name: str
    task: str
    every: timedelta | None = None
    crontab: dict[str, str] | None = None  # minute, hour, day_of_week, day_of_month, month_of_year
    expires_s: int | None = None  # a run not started within this is dropped, never stacked
    queue: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    def __post_init__(self) -> None:
        if (self.every is None) == (self.crontab is None):
            raise ValueError(f"{self.name}: give exactly one of every= or crontab=")
        if self.expires_s is None:
            raise ValueError(f"{self.name}: every periodic job needs expires_s")


def declared_jobs() -> list[PeriodicJob]:
    jobs: list[PeriodicJob] = []
    for config in django_apps.get_app_configs():
        try:
            module = import_module(f"{config.name}.schedules")
        except ModuleNotFoundError as exc:
            if exc.name != f"{config.name}.schedules":
                raise
            continue
        jobs.extend(getattr(module, "JOBS", []))
    names = [job.name for job in jobs]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise ValueError(f"periodic jobs declared twice: {sorted(duplicates)}")
    return jobs


def sync_periodic_tasks() -> int:
    """Create the rows for declared jobs that have none; return how many were created."""
    from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

    created = 0
    for job in declared_jobs():
        if PeriodicTask.objects.filter(name=job.name).exists():
            continue
        schedule: dict[str, Any]
        if job.every is not None:
            interval, _ = IntervalSchedule.objects.get_or_create(
                every=int(job.every.total_seconds()), period=IntervalSchedule.SECONDS
            )
            schedule = {"interval": interval}
        else:
            assert job.crontab is not None
            cron, _ = CrontabSchedule.objects.get_or_create(**job.crontab, timezone="UTC")
            schedule = {"crontab": cron}
        PeriodicTask.objects.create(
            name=job.name,
            task=job.task,
            kwargs=json.dumps(job.kwargs),
            expire_seconds=job.expires_s,
            queue=job.queue,
            description=job.description,
            **schedule,
        )
        created += 1
    return created


def on_post_migrate(sender: Any, using: str = "default", **kwargs: Any) -> None:
    # Run once, after the last app migrated, and only once beat's tables exist: a migrate to an
    # older migration of one app also ends with this signal for every app.
    if getattr(sender, "label", None) != "django_celery_beat":
        return
    from django_celery_beat.models import PeriodicTask

    if not table_exists(PeriodicTask, using):
        return
    sync_periodic_tasks()
