from datetime import datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from backups.engines import BackupError
from backups.pitr import business_checks, free_port, restore_to_point
from backups.services import backup_for_reference, backup_restore


class Command(BaseCommand):
    help = (
        "Restore a dump over the configured database (or --database-url; stop the app first), or, with "
        "--to-time/--to-latest, the database as it was at a moment into a new cluster (--into DIR, --port N)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("backup", nargs="?", help="a backup id, or 'latest' (dumps)")
        parser.add_argument("--yes", action="store_true", help="confirm: the target is overwritten")
        parser.add_argument("--database-url", default=None, help="restore here instead of DATABASE_URL")
        parser.add_argument("--to-time", default=None, help="point in time, ISO 8601 (2026-12-01T21:30:00+01:00)")
        parser.add_argument("--to-latest", action="store_true", help="as late as the archived WAL reaches")
        parser.add_argument("--into", default=None, help="the new cluster's data directory, or a name for "
                            "OPSITE_BACKUP_DIR/restores/NAME (point in time)")  # fmt: skip
        parser.add_argument(
            "--port", type=int, default=None, help="port the new cluster listens on (default: a free one)"
        )
        parser.add_argument("--spool", default=None, help="the WAL receiver's spool, for its unfinished segment")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["to_time"] or options["to_latest"]:
            self._to_point(options)
            return
        if not options["backup"]:
            raise CommandError("name a backup id or 'latest', or give --to-time/--to-latest with --into")
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

    def _to_point(self, options: dict[str, Any]) -> None:
        if options["to_time"] and options["to_latest"]:
            raise CommandError("give --to-time or --to-latest, not both")
        if not options["into"]:
            raise CommandError("--into DIR is required: the restored cluster's new data directory")
        if options["backup"] not in (None, "latest"):
            raise CommandError("a point-in-time restore chooses its base backup by the time; leave out the backup id")
        into = Path(options["into"])
        if "/" not in options["into"]:  # a bare name: a directory of its own beside the backups
            into = Path(settings.OPSITE_BACKUP_DIR) / "restores" / options["into"]
            into.parent.mkdir(parents=True, exist_ok=True)
        target = None
        if options["to_time"]:
            try:
                target = datetime.fromisoformat(options["to_time"])
            except ValueError as exc:
                raise CommandError(f"--to-time {options['to_time']!r} is not an ISO 8601 time") from exc
            if target.tzinfo is None:
                raise CommandError("--to-time needs its offset (…+00:00 or Z): a time without a zone is ambiguous")
        spool = Path(options["spool"]) if options["spool"] else settings.OPSITE_WAL_SPOOL_DIR
        try:
            restored = restore_to_point(
                into=into,
                target=target,
                port=options["port"] or free_port(),
                spool=spool,
                replace=options["yes"],
                progress=lambda line: self.stdout.write(f"  {line}"),
            )
        except BackupError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"restored base {restored.base.name} + {restored.segments} WAL segments in "
                          f"{restored.seconds:.1f} s; last transaction {restored.replayed_to or 'unknown'}; "
                          f"running on port {restored.port} ({restored.data_dir})")  # fmt: skip
        database = settings.DATABASES["default"]["NAME"]
        try:
            checks = business_checks(restored.dsn(database))
        except Exception as exc:
            self.stdout.write(f"business checks could not run: {exc}")
            return
        broken = [slug for slug, r in checks["restaurants"].items() if not r["gap_free"]]
        self.stdout.write(f"checks: {checks['migrations']} migrations, {len(checks['restaurants'])} restaurants, "
                          f"{'gap-free' if not broken else 'gaps in ' + ', '.join(broken)}")  # fmt: skip
