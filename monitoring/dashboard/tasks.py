from __future__ import annotations

from celery import shared_task

from monitoring.dashboard.warming import cache_warm


@shared_task(name="monitoring.cache_warm", time_limit=120, soft_time_limit=100, ignore_result=True)
def cache_warm_task() -> None:
    cache_warm()
