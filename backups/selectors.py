from __future__ import annotations

from typing import Any

from django.db.models import Max
from django.utils import timezone

from .models import Backup
from .storage import STORE_BREAKER as STORE_BREAKER  # the name the health check shows the circuit under
from .storage import backup_storage, is_remote, remote_call, storage_label


def newest_verified() -> Backup | None:
    return Backup.objects.filter(status=Backup.Status.VERIFIED).order_by("-started_at").first()


def newest_verified_age_s() -> float | None:
    backup = newest_verified()
    return None if backup is None else (timezone.now() - backup.started_at).total_seconds()


def last_finished() -> Backup | None:
    return Backup.objects.exclude(status=Backup.Status.RUNNING).order_by("-started_at").first()


FINISHED_STATUSES = tuple(s for s in Backup.Status.values if s != Backup.Status.RUNNING)


def last_finished_failed() -> bool:
    """Whether the newest finished backup failed, in its run or its verification."""
    newest = last_finished()
    return newest is not None and newest.status in (Backup.Status.FAILED, Backup.Status.VERIFY_FAILED)


def recent(limit: int) -> list[Backup]:
    return list(Backup.objects.order_by("-started_at")[:limit])


def change_marker() -> dict[str, Any]:
    """What changes whenever a backup starts, finishes or is verified (a cache key)."""
    return Backup.objects.aggregate(n=Max("pk"), f=Max("finished_at"), v=Max("verified_at"))


def storage_remote() -> bool:
    """Whether backups are kept off this machine (an S3 bucket), not on a local disk."""
    return is_remote(backup_storage())


def storage_where() -> str:
    return storage_label(backup_storage())


def storage_check() -> str:
    """One round trip to the backup store (a listing of its root); its label. Raises when it
    cannot be reached or refuses."""
    storage = backup_storage()
    remote_call(storage, lambda: storage.listdir(""))
    return storage_label(storage)
