from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from backups.engines import BackupError
from backups.services import backup_for_reference, backup_restore


class Command(BaseCommand):
    help = "Restore a backup over the configured database (or --database-url). Stop the app first."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("backup", help="a backup id, or 'latest'")
        parser.add_argument("--yes", action="store_true", help="confirm: the target database is overwritten")
        parser.add_argument("--database-url", default=None, help="restore here instead of DATABASE_URL")

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["yes"]:
            raise CommandError("restoring overwrites the target database; pass --yes to go ahead")
        try:
            backup = backup_for_reference(options["backup"])
            backup_restore(
                backup=backup, database_url=options["database_url"], progress=lambda line: self.stdout.write(line)
            )
        except BackupError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"restored backup {backup.pk} ({backup.started_at:%Y-%m-%d %H:%M:%S})")
