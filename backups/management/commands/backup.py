from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from backups.engines import BackupError
from backups.services import backup_create, backup_verify


class Command(BaseCommand):
    help = "Make a backup now; print its id, checksum, size and duration."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--verify", action="store_true", help="verify it by restore right after")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            backup = backup_create(reason="command")
            self.stdout.write(
                f"backup {backup.pk} {backup.status}: sha256 {backup.sha256}, {backup.size_bytes} bytes, "
                f"dump {backup.dump_seconds:.2f} s, store {backup.upload_seconds:.2f} s"
                f" -> {backup.storage}/{backup.path}"
            )
            if options["verify"]:
                backup = backup_verify(backup=backup, progress=lambda line: self.stdout.write(f"  {line}"))
                self.stdout.write(f"backup {backup.pk} verified: restored in {backup.verify_seconds:.2f} s")
        except BackupError as exc:
            raise CommandError(str(exc)) from exc
