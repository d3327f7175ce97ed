from __future__ import annotations

from celery import shared_task
from django.conf import settings
from django.db import transaction

from .drills import drill_run
from .engines import BackupError
from .models import Backup
from .pitr import base_backup_create, pitr_prune
from .services import backup_create, backup_verify, reap_stale_runs, retention_apply

LIMIT = settings.OPSITE_BACKUP_TIME_LIMIT_S


@shared_task(name="backups.create", time_limit=LIMIT, soft_time_limit=LIMIT - 300, ignore_result=True)
def backup_create_task(reason: str = "scheduled") -> int | None:
    try:
        backup = backup_create(reason=reason)
    except BackupError:
        return None  # recorded on the Backup row; alerts read it from there
    transaction.on_commit(lambda: backup_verify_task.delay(backup.pk))
    return backup.pk


@shared_task(name="backups.verify", time_limit=LIMIT, soft_time_limit=LIMIT - 300, ignore_result=True)
def backup_verify_task(backup_id: int) -> str:
    backup = Backup.objects.get(pk=backup_id)
    try:
        return backup_verify(backup=backup).status
    except BackupError:
        return Backup.objects.get(pk=backup_id).status


@shared_task(name="backups.retention", time_limit=600, soft_time_limit=540, ignore_result=True)
def retention_task() -> list[int]:
    return retention_apply()


@shared_task(name="backups.reap", time_limit=60, soft_time_limit=50, ignore_result=True)
def reap_task() -> list[int]:
    return reap_stale_runs()


def _uses_point_in_time() -> bool:
    """Base backups and drills apply to PostgreSQL; the embedded SQLite keeps its dumps only."""
    from django.db import connection

    return connection.vendor == "postgresql"


@shared_task(name="backups.base", time_limit=LIMIT, soft_time_limit=LIMIT - 300, ignore_result=True)
def base_backup_task() -> str | None:
    if not _uses_point_in_time():
        return None
    try:
        base = base_backup_create()
    except BackupError:
        return None  # the archive report and its alerts say a restore cannot reach now
    pitr_prune()
    return base.name


@shared_task(name="backups.drill", time_limit=LIMIT, soft_time_limit=LIMIT - 300, ignore_result=True)
def drill_task(reason: str = "scheduled") -> str | None:
    if not _uses_point_in_time():
        return None
    try:
        return drill_run(reason=reason).status
    except BackupError:
        return None  # no base backup yet: the drill-age alert says so
