from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from monitoring.history.snapshots import snapshot_collect, snapshot_prune, snapshot_rollup
from monitoring.nodes.reports import node_report


class Command(BaseCommand):
    help = (
        "Record the metric snapshot of the last settled minute now, roll up finished hours and "
        "prune rows past their retention: what the scheduled snapshot jobs do, by hand."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--no-rollup", action="store_true", help="only record the snapshot")

    def handle(self, *args: Any, **options: Any) -> None:
        node_report(role="command")  # this machine counts even when no other process runs
        result = snapshot_collect()
        line = f"snapshot {result.taken_at:%Y-%m-%d %H:%M} UTC: hosts {', '.join(result.hosts) or 'none'}; " \
               f"{result.restaurants} restaurant(s) with orders"  # fmt: skip
        if not options["no_rollup"]:
            rolled = snapshot_rollup()
            pruned = snapshot_prune()
            line += f"; rolled up: {', '.join(f'{n} {label}' for label, n in rolled.items())}"
            line += f"; {sum(pruned.values())} row(s) pruned"
        self.stdout.write(line)
