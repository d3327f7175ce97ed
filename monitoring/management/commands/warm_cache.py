from typing import Any

from django.core.management.base import BaseCommand

from monitoring.dashboard.warming import cache_warm


class Command(BaseCommand):
    help = "Fill the caches the dashboard and the stats read (run after a deploy; also scheduled)."

    def handle(self, *args: Any, **options: Any) -> None:
        took = cache_warm()
        parts = ", ".join(f"{name} {seconds * 1000:.0f} ms" for name, seconds in took.items())
        self.stdout.write(f"warmed {len(took)} entries: {parts}")
