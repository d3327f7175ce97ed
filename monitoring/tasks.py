from celery import shared_task

from monitoring.alerts.delivery import notifications_send_due
from monitoring.alerts.evaluation import alerts_evaluate
from monitoring.alerts.watchdog import evaluator_record
from monitoring.dashboard.snapshots import snapshot_collect, snapshot_prune, snapshot_rollup
from monitoring.dashboard.warming import cache_warm
from monitoring.health.selectors import BEAT
from monitoring.health.services import heartbeat_record
from monitoring.ledger.runs import runs_audit


@shared_task(name="monitoring.beat_heartbeat", time_limit=30, soft_time_limit=20, ignore_result=True)
def beat_heartbeat_task() -> None:
    """Sent by beat, run by a worker: its age says both are alive and the queue moves."""
    heartbeat_record(name=BEAT)


@shared_task(name="monitoring.snapshot_collect", time_limit=55, soft_time_limit=45, ignore_result=True)
def snapshot_collect_task() -> None:
    """Idempotent (an upsert of one settled minute), so an overlap or a repeat changes nothing."""
    snapshot_collect()


@shared_task(name="monitoring.snapshot_rollup", time_limit=900, soft_time_limit=840, ignore_result=True)
def snapshot_rollup_task() -> None:
    snapshot_rollup()


@shared_task(name="monitoring.snapshot_prune", time_limit=1800, soft_time_limit=1740, ignore_result=True)
def snapshot_prune_task() -> None:
    snapshot_prune()


@shared_task(name="monitoring.alerts_evaluate", time_limit=60, soft_time_limit=50, ignore_result=True)
def alerts_evaluate_task() -> None:
    """Evaluation is race-safe and its notifications unique, so an overlap sends nothing twice."""
    alerts_evaluate()
    evaluator_record()
    notifications_send_due()


@shared_task(name="monitoring.task_runs_audit", time_limit=120, soft_time_limit=100, ignore_result=True)
def task_runs_audit_task() -> None:
    runs_audit()


@shared_task(name="monitoring.cache_warm", time_limit=120, soft_time_limit=100, ignore_result=True)
def cache_warm_task() -> None:
    cache_warm()
