from __future__ import annotations

from celery import shared_task
from django.conf import settings
from django.db import transaction

from .engines import BackupError
from .models import Backup
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
