from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from backups.engines import BackupError
from backups.pitr import wal_push


class Command(BaseCommand):
    help = "Archive one WAL segment: the server's archive_command ('manage.py wal_push %p %f')."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", help="the segment's path (%%p)")
        parser.add_argument("name", help="its file name (%%f)")

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["path"])
        if not path.is_file():
            raise CommandError(f"{path} is not a file")
        try:
            sha = wal_push(path, options["name"])
        except (BackupError, OSError) as exc:
            raise CommandError(f"{options['name']}: {exc}") from exc
        self.stdout.write(f"archived {options['name']} sha256 {sha}")
