from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from releases import plain, services
from releases.cli import REFUSED, add_layout_argument, layout_of
from releases.processes import ProcessFailed
from releases.run import DeployError


class Command(BaseCommand):
    help = ("The layout's releases and processes: status (current and previous release, each process); for the "
            "plain layout start (every stopped process, from the current release) and stop (all, in reverse "
            "order, each drained with SIGTERM).")  # fmt: skip

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", choices=["status", "start", "stop"])
        add_layout_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        layout = layout_of(options, "processes")
        if options["action"] == "status":
            for line in services.status(layout):
                self.stdout.write(line)
            return
        if layout.kind != "plain":
            raise CommandError(f"processes: {options['action']} is for the plain layout; a {layout.kind} layout's "
                               "engine starts and stops its containers", returncode=REFUSED)  # fmt: skip
        try:
            if options["action"] == "start":
                plain.start_all(layout, progress=self.stdout.write)
            else:
                plain.stop_layout(layout, progress=self.stdout.write)
        except (DeployError, ProcessFailed) as exc:
            raise CommandError(f"processes: {exc}", returncode=1) from exc
