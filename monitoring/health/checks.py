"""The checks opsite registers: database, cache, channel layer, Celery, beat, system, sockets,
backup storage, and each external dependency named in settings."""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
from typing import Any

import psutil
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.cache import cache
from django.db import connections

from backups.selectors import last_finished, newest_verified_age_s
from common.aio import run_async
from common.replicas import monitor, replica_aliases
from monitoring.health import dependencies
from monitoring.health.celery_state import queue_depth, workers_answering
from monitoring.health.probes import DEGRADED, FAILED, OK, HealthCheck, Probe, register
from monitoring.health.selectors import EVALUATOR, WATCHDOG, beat_heartbeat_age_s, heartbeat_age_s
from realtime.selectors import presence_summary


def database() -> Probe:
    conn = connections["default"]
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    finally:
        conn.close()  # back to the pool (or closed): a probe never holds a connection
    return Probe()


def cache_round_trip() -> Probe:
    key = f"health:{threading.get_ident()}"
    cache.set(key, "1", timeout=5)
    if cache.get(key) != "1":
        raise RuntimeError("the value written was not read back")
    return Probe(data={"backend": settings.CACHES["default"]["BACKEND"].rsplit(".", 1)[-1]})


async def _channel_layer_round_trip() -> None:
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("no channel layer configured")
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "health.ping"})
    message = await asyncio.wait_for(layer.receive(channel), timeout=1.5)
    if message.get("type") != "health.ping":
        raise RuntimeError("the message sent was not received")


def channel_layer() -> Probe:
    run_async(_channel_layer_round_trip(), timeout=settings.OPSITE_HEALTH_CHECK_TIMEOUT_S)
    return Probe()


def celery_workers() -> Probe:
    depth = queue_depth()
    workers = workers_answering()
    data: dict[str, Any] = {"queue_depth": depth, "workers": workers}
    if workers == 0:
        return Probe(FAILED, "no worker answered", data)
    if depth is not None and depth > settings.OPSITE_HEALTH_QUEUE_DEPTH_MAX:
        return Probe(DEGRADED, f"queue depth {depth} over {settings.OPSITE_HEALTH_QUEUE_DEPTH_MAX}", data)
    return Probe(OK, "" if workers is not None else "this broker cannot be asked", data)


def beat_heartbeat() -> Probe:
    age = beat_heartbeat_age_s()
    data = {"age_s": None if age is None else round(age, 1), "max_age_s": settings.OPSITE_BEAT_MAX_AGE_S}
    if age is None:
        return Probe(DEGRADED, "beat has not run a job yet", data)
    if age > settings.OPSITE_BEAT_MAX_AGE_S:
        return Probe(DEGRADED, f"last beat heartbeat {age:.0f} s ago", data)
    return Probe(OK, "", data)


def alert_evaluation() -> Probe:
    bound = settings.OPSITE_ALERT_EVALUATOR_MAX_AGE_S
    evaluator, watchdog = heartbeat_age_s(EVALUATOR), heartbeat_age_s(WATCHDOG)
    data = {"evaluator_age_s": None if evaluator is None else round(evaluator, 1),
            "watchdog_age_s": None if watchdog is None else round(watchdog, 1), "max_age_s": bound}  # fmt: skip
    if evaluator is not None and evaluator <= bound:
        return Probe(OK, "", data)
    if watchdog is not None and watchdog <= bound:
        return Probe(DEGRADED, "the scheduled evaluation is silent; the watchdog evaluates", data)
    return Probe(DEGRADED, "alert rules are not being evaluated", data)


def system() -> Probe:
    memory = psutil.virtual_memory()
    data = {
        "cpu_percent": psutil.cpu_percent(interval=None),
        "memory_percent": memory.percent,
        "load_1m": round(os.getloadavg()[0], 2),
        "process_rss_mb": round(psutil.Process().memory_info().rss / 2**20, 1),
    }
    limit = settings.OPSITE_HEALTH_SYSTEM_PERCENT_MAX
    if memory.percent > limit:
        return Probe(DEGRADED, f"memory {memory.percent:.0f} % over {limit} %", data)
    return Probe(OK, "", data)


def sockets() -> Probe:
    summary = presence_summary()
    return Probe(OK, "", {"total": summary["total"], "nodes": len(summary["by_node"])})


def backup_storage() -> Probe:
    path = settings.OPSITE_BACKUP_DIR
    os.makedirs(path, exist_ok=True)
    usage = shutil.disk_usage(path)
    used = 100 * usage.used / usage.total
    data = {"path": str(path), "free_gb": round(usage.free / 2**30, 2), "used_percent": round(used, 1)}
    remote = dependencies.check_backup_storage()  # S3: reached through its breaker; local: the disk
    if remote is not None:
        data.update({"store": remote["url"], "store_ms": remote["ms"], "circuit": remote["circuit"]})
        if remote["status"] != OK:
            return Probe(FAILED, f"{remote['url']}: {remote['detail']}", data)
    limit = settings.OPSITE_HEALTH_SYSTEM_PERCENT_MAX
    if used > limit:
        return Probe(DEGRADED, f"disk {used:.0f} % used, over {limit} %", data)
    return Probe(OK, "", data)


def backups() -> Probe:
    age = newest_verified_age_s()
    last = last_finished()
    data = {"verified_age_s": None if age is None else round(age), "last_status": last.status if last else None}
    if age is None:
        return Probe(DEGRADED, "no verified backup yet", data)
    if age > settings.OPSITE_BACKUP_MAX_AGE_S:
        return Probe(DEGRADED, f"newest verified backup is {age / 3600:.1f} h old", data)
    return Probe(OK, "", data)


def replicas() -> Probe:
    states = {alias: monitor.check(alias) for alias in replica_aliases()}
    data = {alias: {"ok": st.ok, "lag_s": st.lag_s, "detail": st.detail} for alias, st in states.items()}
    bad = [alias for alias, st in states.items() if not st.ok]
    if bad:
        return Probe(
            DEGRADED, "reads fall back to the primary: " + ", ".join(f"{a} {states[a].detail}" for a in bad), data
        )
    return Probe(OK, "" if states else "no replicas configured", data)


def external_dependencies() -> Probe:
    results = dependencies.check_all()
    down = [r["name"] for r in results if r["status"] != OK]
    data = {"count": len(results), "down": down}
    return Probe(DEGRADED if down else OK, ", ".join(down), data)


def register_builtin() -> None:
    register(HealthCheck("database", database, critical=True))
    # Not critical: with Redis down the web keeps serving and ingest keeps storing (the outbox
    # delivers later), so a Redis outage must not take every web node out of rotation.
    register(HealthCheck("channel_layer", channel_layer, in_ready=True))
    register(HealthCheck("cache", cache_round_trip))
    register(HealthCheck("celery", celery_workers, timeout_s=2.5))
    register(HealthCheck("beat", beat_heartbeat))
    register(HealthCheck("alert_evaluation", alert_evaluation))
    register(HealthCheck("system", system))
    register(HealthCheck("websocket", sockets))
    register(HealthCheck("backup_storage", backup_storage))
    register(HealthCheck("backups", backups))
    register(HealthCheck("dependencies", external_dependencies, timeout_s=3.0))
    register(HealthCheck("replicas", replicas, timeout_s=3.0))
