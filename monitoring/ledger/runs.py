"""The run ledger of scheduled jobs: every run beat starts is a ``TaskRun`` row.

Every task of the Celery app runs through ``LedgeredTask``. A message sent by beat carries the
periodic task's name and the moment beat sent it (a header stamped on publish). Before running,
the task claims the slot that moment belongs to, read from the job's schedule: the latest
crontab tick at or before it, or the interval-long slot of an interval job, under a row lock
on the job's schedule. Beat sends an interval job at least an interval apart, so one beat never
sends two messages into one slot, and a beat that starts again sends its late run into the
slot it is late for: neither a restart nor queueing delay makes a duplicate. A second claim of
the same slot (a second beat, a redelivered message) is recorded as ``duplicate`` and does not
run. An audit writes ``missed`` rows for slots that passed without a run. Tasks not sent by
beat run as usual, unrecorded.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from celery import Task
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from common.clock import floor_to
from monitoring.ledger.models import TaskRun

log = logging.getLogger(__name__)

CRONTAB_SLOT_S = 60
MAX_MISSED_PER_AUDIT = 60  # per job: a long outage is visible without flooding the ledger
SENT_AT_HEADER = "opsite_sent_at"
# Beat never sends a crontab job before its tick; a message a little ahead of its tick by the
# sender's clock still belongs to it.
EARLY_TOLERANCE = timedelta(seconds=2)
LONGEST_CRONTAB_GAP = timedelta(days=32)  # how far back to look for a crontab job's tick


def stamp_beat_message(headers: dict[str, Any] | None = None, **_: Any) -> None:
    """``before_task_publish``: the moment beat sent a periodic run, which names its slot."""
    if headers is not None and headers.get("periodic_task_name"):
        headers.setdefault(SENT_AT_HEADER, time.time())


def _period_s(job: Any) -> int:
    """Seconds per slot for a django-celery-beat PeriodicTask row."""
    if job.interval_id:
        return int(job.interval.schedule.run_every.total_seconds())
    return CRONTAB_SLOT_S


def slot_of(job: Any, sent: datetime) -> datetime:
    """The slot of the job's schedule that a run sent at ``sent`` belongs to."""
    if job is not None and job.crontab_id:
        schedule = job.crontab.schedule
        tick = floor_to(sent + EARLY_TOLERANCE, 60)
        oldest = tick - LONGEST_CRONTAB_GAP
        while tick > oldest:
            if _crontab_matches(schedule, tick):
                return tick
            tick -= timedelta(minutes=1)
    return floor_to(sent, _period_s(job) if job is not None else CRONTAB_SLOT_S)


def run_claim(
    *, job: str, task: str, task_id: str, sent_at: datetime | None = None, now: datetime | None = None
) -> TaskRun | None:
    """Record a run of ``job`` sent at ``sent_at`` (by default: now); None when its slot was
    already claimed (a duplicate, recorded and not run)."""
    from django_celery_beat.models import PeriodicTask

    now = now or timezone.now()
    sent = min(sent_at or now, now)
    node = f"{settings.OPSITE_NODE_NAME}"
    jobs = PeriodicTask.objects.select_related("interval", "crontab")
    slot = slot_of(jobs.filter(name=job).first(), sent)
    try:
        with transaction.atomic():
            # The lock orders concurrent claims of one job; the unique (job, slot) decides.
            PeriodicTask.objects.select_for_update().filter(name=job).exists()
            return TaskRun.objects.create(job=job, task=task, task_id=task_id, scheduled_for=slot, started_at=now,
                                          node=node)  # fmt: skip
    except IntegrityError:
        if TaskRun.objects.filter(task_id=task_id).exists():
            log.warning("run %s of %s was delivered again; not started again", task_id, job)
            return None
        TaskRun.objects.create(job=job, task=task, task_id=task_id, scheduled_for=slot, started_at=now,
                               finished_at=now, node=node, status=TaskRun.Status.DUPLICATE)  # fmt: skip
        log.warning("duplicate run of %s for slot %s (task %s) not started", job, slot.isoformat(), task_id)
        return None


def run_finish(run: TaskRun, *, started: float, error: BaseException | None = None) -> None:
    TaskRun.objects.filter(pk=run.pk).update(
        finished_at=timezone.now(),
        duration_ms=round((time.perf_counter() - started) * 1000, 2),
        status=TaskRun.Status.FAILED if error else TaskRun.Status.SUCCEEDED,
        error=f"{type(error).__name__}: {error}"[:2000] if error else "",
    )


class LedgeredTask(Task):
    """The Celery app's task class: runs sent by beat are claimed and recorded."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        job = getattr(self.request, "periodic_task_name", None)
        if not job or self.request.is_eager:
            return super().__call__(*args, **kwargs)
        stamped = getattr(self.request, SENT_AT_HEADER, None)
        sent_at = datetime.fromtimestamp(float(stamped), tz=UTC) if stamped is not None else None
        run = run_claim(job=job, task=self.name, task_id=str(self.request.id), sent_at=sent_at)
        if run is None:
            return None
        started = time.perf_counter()
        try:
            result = super().__call__(*args, **kwargs)
        except BaseException as exc:
            run_finish(run, started=started, error=exc)
            raise
        run_finish(run, started=started)
        return result


def _crontab_matches(schedule: Any, tick: datetime) -> bool:
    local = tick.astimezone(schedule.tz) if getattr(schedule, "tz", None) else tick
    return (local.minute in schedule.minute and local.hour in schedule.hour
            and local.isoweekday() % 7 in schedule.day_of_week and local.day in schedule.day_of_month
            and local.month in schedule.month_of_year)  # fmt: skip


def _crontab_ticks(job: Any, since: datetime, until: datetime) -> list[datetime]:
    schedule = job.crontab.schedule
    tick = floor_to(since, 60) + timedelta(minutes=1)
    ticks = []
    while tick <= until:
        if _crontab_matches(schedule, tick):
            ticks.append(tick)
        tick += timedelta(minutes=1)
    return ticks


def runs_audit(*, now: datetime | None = None, lookback: timedelta = timedelta(hours=2)) -> int:
    """Write a ``missed`` row for every slot of an enabled job that passed without a run
    (crontab: each tick; interval: each gap of more than two intervals); return how many."""
    from django_celery_beat.models import PeriodicTask

    now = now or timezone.now()
    grace = timedelta(seconds=settings.OPSITE_TASK_MISSED_GRACE_S)
    first_run = TaskRun.objects.order_by("scheduled_for").values_list("scheduled_for", flat=True).first()
    if first_run is None:
        return 0  # beat has never run here; its heartbeat alert says so
    written = 0
    jobs = PeriodicTask.objects.filter(enabled=True).exclude(name__startswith="celery.")
    for job in jobs.select_related("interval", "crontab"):
        since = max(now - lookback, first_run, job.start_time or first_run)
        runs = TaskRun.objects.filter(job=job.name, scheduled_for__gte=since - timedelta(minutes=1))
        seen = sorted(runs.exclude(status=TaskRun.Status.DUPLICATE).values_list("scheduled_for", flat=True))
        missing: list[datetime] = []
        if job.crontab_id:
            taken = set(seen)
            missing = [t for t in _crontab_ticks(job, since, now - grace) if t not in taken]
        elif job.interval_id:
            period = timedelta(seconds=_period_s(job))
            previous = seen[0] if seen else since
            for at in [*seen[1:], now - grace]:
                while at - previous > 2 * period:
                    previous += period
                    missing.append(floor_to(previous, int(period.total_seconds())))
                previous = max(previous, at)
        for slot in missing[-MAX_MISSED_PER_AUDIT:]:
            try:
                with transaction.atomic():
                    TaskRun.objects.create(job=job.name, task=job.task, scheduled_for=slot, started_at=slot,
                                           task_id=f"missed:{job.pk}:{int(slot.timestamp())}",
                                           status=TaskRun.Status.MISSED, node="")  # fmt: skip
                written += 1
            except IntegrityError:
                continue  # already recorded (as missed, or a run claimed it late)
    return written
