from __future__ import annotations

from celery import shared_task

from monitoring.history.snapshots import snapshot_collect, snapshot_prune, snapshot_rollup


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
