from datetime import UTC, datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from backups.engines import BackupError
from backups.pitr import archive_report


class Command(BaseCommand):
    help = "What point-in-time recovery can restore: base backups, archived WAL, gaps; exit 1 when it cannot."

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            report = archive_report()
        except BackupError as exc:
            raise CommandError(str(exc)) from exc
        for base in report.bases:
            self.stdout.write(f"base {base.name}: finished {base.finished_at:%Y-%m-%d %H:%M:%S} UTC, "
                              f"{base.size_bytes / 2**20:.1f} MiB, WAL from {base.start_segment}")  # fmt: skip
        if report.segments:
            age = (datetime.now(UTC) - report.newest_segment_at).total_seconds() if report.newest_segment_at else 0
            self.stdout.write(f"WAL: {len(report.segments)} segments, {report.segments[0]} to {report.segments[-1]} "
                              f"(the newest stored {age:.0f} s ago)")  # fmt: skip
        if not report.bases:
            raise CommandError("no base backup is stored: nothing can be restored to a point in time")
        if report.gaps:
            raise CommandError(f"the WAL archive has a gap: {len(report.gaps)} segments missing from {report.gaps[0]}")
        self.stdout.write("restorable: from the oldest base backup to the newest archived segment")
