from __future__ import annotations

from celery import shared_task

from monitoring.ledger.runs import runs_audit


@shared_task(name="monitoring.task_runs_audit", time_limit=120, soft_time_limit=100, ignore_result=True)
def task_runs_audit_task() -> None:
    runs_audit()
