from typing import Any

from django.core.management.base import BaseCommand, CommandError

from backups.drills import drill_run
from backups.engines import BackupError


class Command(BaseCommand):
    help = "Restore the newest point into a scratch cluster, check the business data there, drop it; exit 1 on failure."

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            drill = drill_run(reason="command")
        except BackupError as exc:
            raise CommandError(str(exc)) from exc
        if drill.status != drill.Status.PASSED:
            raise CommandError(f"restore drill {drill.pk} failed: {drill.error}")
        restaurants = drill.checks.get("restaurants", {})
        self.stdout.write(
            f"restore drill {drill.pk} passed: base {drill.base} + {drill.segments} WAL segments restored in "
            f"{drill.rto_seconds:.1f} s (to {drill.restored_to}); {len(restaurants)} restaurants gap-free, "
            f"{drill.checks.get('migrations')} migrations, {drill.checks.get('catch_up_read')} events read back"
        )
