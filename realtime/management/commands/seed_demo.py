from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from realtime.services.demo import demo_seed


class Command(BaseCommand):
    help = "Create demo restaurants, staff, an admin and a day of orders."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--force", action="store_true", help="run even when DEBUG is off")

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG and not options["force"]:
            raise CommandError("seed_demo refuses to run with DEBUG off; pass --force if you mean it")
        for login in demo_seed():
            self.stdout.write(f"login {login.username} / {login.password}  -- {login.what}")
