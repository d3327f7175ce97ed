from __future__ import annotations

from datetime import timedelta

import pytest
from django_celery_beat.models import PeriodicTask

from common.scheduling import PeriodicJob, declared_jobs, sync_periodic_tasks
from opsite.celery import app

pytestmark = pytest.mark.django_db


def test_every_declared_job_has_a_row_after_migrate():
    names = {job.name for job in declared_jobs()}
    assert names, "no periodic jobs are declared"
    rows = {t.name: t for t in PeriodicTask.objects.filter(name__in=names)}
    assert set(rows) == names
    app.loader.import_default_modules()  # what a worker does at start
    for job in declared_jobs():
        row = rows[job.name]
        assert row.task == job.task and row.expire_seconds == job.expires_s and row.enabled
        assert job.task in app.tasks, f"{job.task} is not a registered Celery task"


def test_sync_leaves_admin_edits_alone_and_restores_deleted_rows():
    job = declared_jobs()[0]
    PeriodicTask.objects.filter(name=job.name).update(enabled=False)
    assert sync_periodic_tasks() == 0
    assert PeriodicTask.objects.get(name=job.name).enabled is False
    PeriodicTask.objects.filter(name=job.name).delete()
    assert sync_periodic_tasks() == 1
    assert PeriodicTask.objects.get(name=job.name).enabled is True


def test_a_job_needs_one_schedule_and_an_expiry():
    with pytest.raises(ValueError, match="exactly one"):
        PeriodicJob(name="x", task="t", expires_s=5)
    with pytest.raises(ValueError, match="expires_s"):
        PeriodicJob(name="x", task="t", every=timedelta(seconds=5))


def test_beat_uses_the_database_scheduler():
    assert app.conf.beat_scheduler == "django_celery_beat.schedulers:DatabaseScheduler"
