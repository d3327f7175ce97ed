from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.dateparse import parse_datetime

from monitoring.requests.queries import SORTS
from monitoring.requests.report import FORMATS, ReportError, render, statement_report


class Command(BaseCommand):
    help = (
        "The heaviest SQL statements of a time range (by total or mean time, or count) with the routes that ran "
        "them as N+1, as text, JSON or CSV; --suggest adds the index advisor's suggestions (Postgres)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--minutes", type=int, default=60, help="length of the range (1-70; default 60)")
        parser.add_argument("--until", help="end of the range, ISO 8601 with a zone (default: now)")
        parser.add_argument("--sort", choices=list(SORTS), default="total")
        parser.add_argument("--limit", type=int, default=20, help="statements to show (default 20)")
        parser.add_argument("--format", choices=FORMATS, default="text")
        parser.add_argument("--suggest", action="store_true", help="index suggestions for each SELECT")

    def handle(self, *args: Any, **options: Any) -> None:
        until = None
        if options["until"]:
            until = parse_datetime(options["until"])
            if until is None or until.tzinfo is None:
                raise CommandError(
                    f"--until must be ISO 8601 with a zone, like 2026-12-01T14:00:00Z: {options['until']!r}"
                )
        try:
            report = statement_report(minutes=options["minutes"], until=until, sort=options["sort"],
                                      limit=options["limit"], with_advice=options["suggest"])  # fmt: skip
        except ReportError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(render(report, options["format"]), ending="")
