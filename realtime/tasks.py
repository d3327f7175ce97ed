from celery import shared_task

from .services import outbox_sweep


@shared_task(name="realtime.outbox_sweep", time_limit=60, soft_time_limit=50, ignore_result=True)
def outbox_sweep_task() -> int:
    return outbox_sweep()
