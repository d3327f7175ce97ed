"""What the deploy, rollback and processes commands share: the layout argument and who runs them."""

from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from releases.layout import Layout, LayoutError, load
from releases.run import Outcome

REFUSED = 2  # 0 done, 1 failed or rolled back, 2 refused before anything changed


def add_layout_argument(parser: CommandParser) -> None:
    parser.add_argument("--layout", type=Path, default=os.environ.get("OPSITE_LAYOUT"), metavar="FILE",
                        help="the layout file (default: $OPSITE_LAYOUT)")  # fmt: skip


def layout_of(options: dict[str, Any], command: str) -> Layout:
    if options["layout"] is None:
        raise CommandError(f"{command}: no layout: pass --layout FILE or set OPSITE_LAYOUT", returncode=REFUSED)
    try:
        return load(options["layout"])
    except LayoutError as exc:
        raise CommandError(f"{command}: {exc}", returncode=REFUSED) from exc


def who(options: dict[str, Any]) -> str:
    if options.get("by"):
        return str(options["by"])
    return os.environ.get("SUDO_USER") or getpass.getuser()


class ReleaseCommand(BaseCommand):
    """A deploy or rollback command: its steps printed as they happen, then one line with the
    result, and the outcome's exit code."""

    def say(self, line: str) -> None:
        self.stdout.write(line)
        self.stdout.flush()

    def conclude(self, what: str, outcome: Outcome) -> None:
        line = f"{what} {outcome.version}: {outcome.result}" + (f" ({outcome.reason})" if outcome.reason else "")
        self.stdout.write(self.style.SUCCESS(line) if outcome.exit_code == 0 else self.style.ERROR(line))
        if outcome.exit_code:
            raise SystemExit(outcome.exit_code)
