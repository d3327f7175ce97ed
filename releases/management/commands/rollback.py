from typing import Any

from django.core.management.base import CommandError, CommandParser

from releases import services
from releases.cli import REFUSED, ReleaseCommand, add_layout_argument, layout_of, who
from releases.layout import LayoutError
from releases.run import DeployError


class Command(ReleaseCommand):
    help = (
        "Go back to the previous release (or --to one) with a rolling restart. --restore-backup --yes also "
        "restores the backup taken before the current release was deployed: every process stops first. "
        "Exits 0 done, 1 failed, 2 refused."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        add_layout_argument(parser)
        parser.add_argument("--to", metavar="RELEASE", help="the release to go back to (default: the previous one)")
        parser.add_argument("--restore-backup", action="store_true",
                            help="restore the current release's pre-deploy backup (stops every process; "
                                 "orders taken since that backup are lost)")  # fmt: skip
        parser.add_argument("--backup", type=int, metavar="ID", help="restore this backup instead")
        parser.add_argument("--yes", action="store_true", help="confirm --restore-backup")
        parser.add_argument("--by", help="who rolls back (default: the user running it)")

    def handle(self, *args: Any, **options: Any) -> None:
        layout = layout_of(options, "rollback")
        if options["backup"] is not None and not options["restore_backup"]:
            raise CommandError("rollback: --backup goes with --restore-backup", returncode=REFUSED)
        if options["restore_backup"] and not options["yes"]:
            raise CommandError("rollback: --restore-backup replaces the database and loses what was written since "
                               "the backup; add --yes to confirm", returncode=REFUSED)  # fmt: skip
        try:
            outcome = services.rollback(layout, to=options["to"], restore_backup=options["restore_backup"],
                                        backup_id=options["backup"], by=who(options), progress=self.say)  # fmt: skip
        except (DeployError, LayoutError) as exc:
            raise CommandError(f"rollback: {exc}", returncode=REFUSED) from exc
        self.conclude("rollback to", outcome)
