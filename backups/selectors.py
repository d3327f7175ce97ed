from __future__ import annotations

from typing import Any

from django.db.models import Max
from django.utils import timezone

from .models import Backup, RestoreDrill
from .pitr import archive_report_cached, archiver_lag_s
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


def newest_drill() -> RestoreDrill | None:
    return RestoreDrill.objects.exclude(status=RestoreDrill.Status.RUNNING).order_by("-started_at").first()


def passed_drill_age_s() -> float | None:
    """Seconds since the newest passed restore drill started (None: never passed)."""
    drill = RestoreDrill.objects.filter(status=RestoreDrill.Status.PASSED).order_by("-started_at").first()
    return None if drill is None else (timezone.now() - drill.started_at).total_seconds()


def base_backups_exist() -> bool:
    return bool(archive_report_cached().bases)


def archive_gap_count() -> int:
    """Segments missing between the first and the newest archived (0 without an archive)."""
    return len(archive_report_cached().gaps)


def pitr_summary() -> dict[str, Any]:
    """Point-in-time recovery at a glance (the dashboard's backup panel): how far a restore
    reaches now, the archiver's lag, any gap, and the last restore drill."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return {"available": False, "why": "point-in-time recovery needs PostgreSQL"}
    report = archive_report_cached()
    lag = archiver_lag_s()
    drill = newest_drill()
    return {
        "available": True,
        "bases": len(report.bases),
        "restorable_to": report.newest_segment_at.isoformat() if report.newest_segment_at and report.bases else None,
        "archiver": "none" if lag is None else "down" if lag == float("inf") else "streaming",
        "archive_lag_s": None if lag is None or lag == float("inf") else round(lag, 3),
        "gaps": len(report.gaps),
        "last_drill": None if drill is None else {
            "id": drill.pk, "status": drill.status, "at": drill.started_at.isoformat(), "rto_s": drill.rto_seconds,
        },
    }  # fmt: skip
