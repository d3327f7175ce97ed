"""Backup runs as cluster-wide Prometheus series (they run in workers, which are not scraped):
runs by outcome, and histograms of durations and sizes."""

from __future__ import annotations

from common.series import SharedCounter, SharedHistogram

from .models import Backup

RUNS = SharedCounter("opsite_backup_runs", "Backup runs by outcome, all workers", ["status"])
DURATION = SharedHistogram(
    "opsite_backup_duration_seconds", "Backup run time (dump, checksum, store), by outcome", "status",
    (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, float("inf")),
)  # fmt: skip
SIZE = SharedHistogram(
    "opsite_backup_size_bytes", "Size of stored backups, by outcome", "status",
    (*(float(2**n) for n in range(20, 41, 2)), float("inf")),  # 1 MiB to 1 TiB
)  # fmt: skip


def backup_observe(backup: Backup) -> None:
    RUNS.inc(backup.status)
    if backup.finished_at is not None:
        DURATION.observe(backup.status, (backup.finished_at - backup.started_at).total_seconds())
    if backup.size_bytes is not None:
        SIZE.observe(backup.status, float(backup.size_bytes))
