from __future__ import annotations

from django.utils import timezone

from .models import Backup


def newest_verified() -> Backup | None:
    return Backup.objects.filter(status=Backup.Status.VERIFIED).order_by("-started_at").first()


def newest_verified_age_s() -> float | None:
    backup = newest_verified()
    return None if backup is None else (timezone.now() - backup.started_at).total_seconds()


def last_finished() -> Backup | None:
    return Backup.objects.exclude(status=Backup.Status.RUNNING).order_by("-started_at").first()
