from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from backups.engines import BackupError
from backups.pitr import base_backup_create, pitr_prune
from backups.services import backup_create, backup_verify


class Command(BaseCommand):
    help = "Make a backup now; print its id, checksum, size and duration."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--verify", action="store_true", help="verify it by restore right after")
        parser.add_argument("--base", action="store_true",
                            help="a base backup for point-in-time recovery (pg_basebackup), not a dump")  # fmt: skip

    def handle(self, *args: Any, **options: Any) -> None:
        if options["base"]:
            self._base()
            return
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

    def _base(self) -> None:
        try:
            base = base_backup_create(progress=lambda line: self.stdout.write(f"  {line}"))
            dropped, segments = pitr_prune()
        except BackupError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"base backup {base.name}: sha256 {base.sha256}, {base.size_bytes} bytes, WAL from "
                          f"{base.start_segment} to {base.end_segment}")  # fmt: skip
        if dropped or segments:
            self.stdout.write(f"retention: removed {len(dropped)} base backups and {len(segments)} WAL segments")
