from __future__ import annotations

from celery import shared_task

from monitoring.alerts.delivery import notifications_send_due
from monitoring.alerts.evaluation import alerts_evaluate
from monitoring.alerts.watchdog import evaluator_record


@shared_task(name="monitoring.alerts_evaluate", time_limit=60, soft_time_limit=50, ignore_result=True)
def alerts_evaluate_task() -> None:
    """Evaluation is race-safe and its notifications unique, so an overlap sends nothing twice."""
    alerts_evaluate()
    evaluator_record()
    notifications_send_due()
