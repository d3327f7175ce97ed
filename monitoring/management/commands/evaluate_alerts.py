from typing import Any

from django.core.management.base import BaseCommand

from monitoring.alerts.delivery import notifications_send_due
from monitoring.alerts.evaluation import alerts_evaluate


class Command(BaseCommand):
    help = "Evaluate every enabled alert rule now and send the notifications that are due."

    def handle(self, *args: Any, **options: Any) -> None:
        result = alerts_evaluate()
        sent = notifications_send_due()
        self.stdout.write(
            f"{result.rules} rule(s), {result.alerts} alert(s) in {result.seconds * 1000:.0f} ms: "
            f"{len(result.fired)} fired, {len(result.resolved)} resolved, {result.held} held; "
            f"notifications: {', '.join(f'{n} {k}' for k, n in sorted(sent.items())) or 'none due'}"
        )
