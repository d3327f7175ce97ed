import signal
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

from django.core.management.base import BaseCommand, CommandError, CommandParser

from monitoring.alerts import monitor
from monitoring.health.probes import DEGRADED, FAILED, OK

USAGE_ERROR = 3  # 0, 1 and 2 are the health statuses


class Command(BaseCommand):
    help = (
        "Take the health report every --every seconds (or once with --once): a line per check (coloured on a "
        "terminal) or --json lines; --log FILE appends JSON lines; --notify tells the alert channels when the "
        "overall status changes. Exits 0 healthy, 1 degraded, 2 unhealthy (the last round's), 3 on bad usage."
    )

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)

        def usage_error(message: str) -> NoReturn:
            if parser.called_from_command_line:
                sys.stderr.write(f"monitor: {message}\n")
                sys.exit(USAGE_ERROR)
            raise CommandError(f"monitor: {message}", returncode=USAGE_ERROR)

        parser.error = usage_error  # type: ignore[method-assign]  # 2 means unhealthy here, not bad usage
        return parser

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true", help="one round, then exit with its status")
        parser.add_argument("--every", type=float, default=30.0, metavar="SECONDS", help="seconds between rounds")
        parser.add_argument("--count", type=int, default=0, metavar="N", help="stop after N rounds (0: never)")
        parser.add_argument("--json", action="store_true", help="print each round as one JSON line")
        parser.add_argument("--log", type=Path, metavar="FILE", help="append each round to FILE as a JSON line")
        parser.add_argument("--notify", action="store_true",
                            help="notify the alert channels when the overall status changes (from the last "
                                 "line of --log across runs, so it works from cron with --once)")  # fmt: skip

    def handle(self, *args: Any, **options: Any) -> None:
        every, count, log = options["every"], options["count"], options["log"]
        if every <= 0 or every > 86_400:
            raise CommandError(f"monitor: --every must be over 0 and at most 86400 seconds, not {every:g}",
                               returncode=USAGE_ERROR)  # fmt: skip
        if count < 0:
            raise CommandError(f"monitor: --count must be 0 or more, not {count}", returncode=USAGE_ERROR)
        if log is not None and not log.parent.is_dir():
            raise CommandError(f"monitor: no directory for the log {log}", returncode=USAGE_ERROR)
        rounds = 1 if options["once"] else count
        previous = monitor.last_logged_status(log) if log is not None else None
        stopping: list[int] = []
        for stop_signal in (signal.SIGTERM, signal.SIGINT):
            signal.signal(stop_signal, lambda signum, _frame: stopping.append(signum))
        taken = 0
        current = None
        while not stopping:
            started = time.monotonic()
            current = monitor.monitor_round()
            taken += 1
            self._show(current, as_json=options["json"])
            if log is not None:
                monitor.log_append(log, monitor.json_line(current))
            if options["notify"]:
                self._announce(previous, current)
            previous = current.status
            if rounds and taken >= rounds:
                break
            deadline = started + every
            while not stopping and time.monotonic() < deadline:
                time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
        if current is not None:
            raise SystemExit(current.exit_code)

    def _show(self, current: monitor.Round, *, as_json: bool) -> None:
        if as_json:
            self.stdout.write(monitor.json_line(current))
            return
        styles = {OK: self.style.SUCCESS, DEGRADED: self.style.WARNING, FAILED: self.style.ERROR}
        for line in monitor.check_lines(current):
            self.stdout.write(styles.get(line.status, self.style.NOTICE)(line.text))
        overall = {0: self.style.SUCCESS, 1: self.style.WARNING}.get(current.exit_code, self.style.ERROR)
        self.stdout.write(overall(monitor.summary_line(current)))
        self.stdout.flush()

    def _announce(self, previous: str | None, current: monitor.Round) -> None:
        outcomes = monitor.announce_change(previous, current)
        if outcomes is None:
            return
        told = ", ".join(f"{name} {what}" for name, what in outcomes.items()) or "no channel is enabled"
        self.stderr.write(f"status {previous} -> {current.status}: {told}")
