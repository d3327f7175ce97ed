from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from backups.engines import BackupError
from backups.services import backup_for_reference, backup_verify


class Command(BaseCommand):
    help = "Check a backup's checksum and restore it into a scratch database; non-zero exit on any failure."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("backup", help="a backup id, or 'latest'")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            backup = backup_verify(
                backup=backup_for_reference(options["backup"]), progress=lambda line: self.stdout.write(f"  {line}")
            )
        except BackupError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"backup {backup.pk} verified: checksum ok, {len(backup.row_counts)} tables with matching row counts, "
            f"restored in {backup.verify_seconds:.2f} s"
        )
