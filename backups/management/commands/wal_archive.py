import signal
import threading
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from backups.engines import BackupError
from backups.pitr import wal_receive, wal_ship


class Command(BaseCommand):
    help = "Archive the write-ahead log continuously (pg_receivewal through a slot) to the backup storage."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--spool", default=None, help="local directory for the segment being written")
        parser.add_argument("--synchronous", action="store_true", default=None,
                            help="report each flush at once (with the server's synchronous_standby_names)")  # fmt: skip
        parser.add_argument("--ship-only", action="store_true",
                            help="ship what the server's archive_command puts in the spool")  # fmt: skip

    def handle(self, *args: Any, **options: Any) -> None:
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        synchronous = settings.OPSITE_WAL_SYNCHRONOUS if options["synchronous"] is None else options["synchronous"]
        spool = Path(options["spool"] or settings.OPSITE_WAL_SPOOL_DIR)
        say = lambda line: self.stdout.write(line, ending="\n")  # noqa: E731
        try:
            if options["ship_only"]:
                state = wal_ship(spool=spool, stop=stop, progress=say)
            else:
                state = wal_receive(spool=spool, synchronous=synchronous, stop=stop, progress=say)
        except BackupError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"stopped: {state.shipped} segments archived, last {state.last_shipped or 'none'}")
