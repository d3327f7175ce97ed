import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from monitoring.health.probes import UNHEALTHY, detailed_report


class Command(BaseCommand):
    help = "Print the detailed health report; exit 1 when unhealthy (for cron and container checks)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--quiet", action="store_true", help="print only the overall status")

    def handle(self, *args: Any, **options: Any) -> None:
        status, report = detailed_report()
        self.stdout.write(status if options["quiet"] else json.dumps(report, indent=2, default=str))
        if status == UNHEALTHY:
            raise SystemExit(1)
