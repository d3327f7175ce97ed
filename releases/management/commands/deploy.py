from typing import Any

from django.core.management.base import CommandError, CommandParser

from releases import services
from releases.cli import REFUSED, ReleaseCommand, add_layout_argument, layout_of, who
from releases.layout import LayoutError
from releases.run import DeployError


class Command(ReleaseCommand):
    help = (
        "Deploy a release: pre-flight (check --deploy, pending migrations, a verified backup), migrate, rolling "
        "restart with readiness waits, cache warming and the health gate; rolled back by itself when a process "
        "is never ready or the gate fails. Exits 0 deployed, 1 failed or rolled back, 2 refused."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("release", help="plain layout: a release directory or its name under <root>/releases; "
                                            "compose and kubernetes: the image tag")  # fmt: skip
        add_layout_argument(parser)
        parser.add_argument("--by", help="who deploys (default: the user running it)")

    def handle(self, *args: Any, **options: Any) -> None:
        layout = layout_of(options, "deploy")
        try:
            outcome = services.deploy(layout, options["release"], by=who(options), progress=self.say)
        except (DeployError, LayoutError) as exc:
            raise CommandError(f"deploy: {exc}", returncode=REFUSED) from exc
        self.conclude("deploy", outcome)
