"""Health checks: a registry of named checks, each run with its own timeout."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

from channels.layers import get_channel_layer
from django.conf import settings
from django.core.cache import cache
from django.db import connections

from opsite.aio import run_async

OK, DEGRADED, FAILED = "ok", "degraded", "failed"


@dataclass(frozen=True)
class CheckResult:
    status: str
    ms: float
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"status": self.status, "ms": round(self.ms, 2)}
        if self.detail:
            data["detail"] = self.detail
        return data


@dataclass(frozen=True)
class HealthCheck:
    name: str
    probe: Callable[[], str | None]  # raises on failure; may return a detail
    critical: bool
    timeout_s: float | None = None


REGISTRY: dict[str, HealthCheck] = {}


def register(check: HealthCheck) -> HealthCheck:
    REGISTRY[check.name] = check
    return check


def _database() -> str | None:
    conn = connections["default"]
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    finally:
        conn.close()  # back to the pool (or closed): a probe never holds a connection
    return None


def _cache() -> str | None:
    key = f"health:{threading.get_ident()}"
    cache.set(key, "1", timeout=5)
    if cache.get(key) != "1":
        raise RuntimeError("the value written was not read back")
    return None


async def _channel_layer_round_trip() -> None:
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("no channel layer configured")
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "health.ping"})
    message = await asyncio.wait_for(layer.receive(channel), timeout=1.5)
    if message.get("type") != "health.ping":
        raise RuntimeError("the message sent was not received")


def _channel_layer() -> str | None:
    run_async(_channel_layer_round_trip(), timeout=settings.OPSITE_HEALTH_CHECK_TIMEOUT_S)
    return None


register(HealthCheck("database", _database, critical=True))
register(HealthCheck("channel_layer", _channel_layer, critical=True))
register(HealthCheck("cache", _cache, critical=False))

# Checks run on their own threads so a hanging one costs its timeout, never the caller's.
# The threads are few and reused, so database connections stay flat however many probes arrive.
_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="health")


def _timed(check: HealthCheck) -> CheckResult:
    started = time.perf_counter()
    try:
        detail = check.probe() or ""
    except Exception as exc:
        return CheckResult(FAILED, (time.perf_counter() - started) * 1000, f"{type(exc).__name__}: {exc}")
    return CheckResult(OK, (time.perf_counter() - started) * 1000, detail)


def run_checks(names: list[str], *, overall_timeout_s: float) -> dict[str, CheckResult]:
    started = time.monotonic()
    futures = {name: _pool.submit(_timed, REGISTRY[name]) for name in names}
    results: dict[str, CheckResult] = {}
    for name, future in futures.items():
        own = REGISTRY[name].timeout_s or settings.OPSITE_HEALTH_CHECK_TIMEOUT_S
        remaining = max(0.0, min(own, overall_timeout_s - (time.monotonic() - started)))
        try:
            results[name] = future.result(timeout=remaining)
        except FutureTimeout:
            results[name] = CheckResult(FAILED, (time.monotonic() - started) * 1000, "timed out")
    return results


_ready_cache: tuple[float, bool, dict[str, CheckResult]] | None = None
_ready_lock = threading.Lock()


def readiness() -> tuple[bool, dict[str, CheckResult]]:
    """The critical checks, cached briefly so a storm of probes costs one round of checks."""
    global _ready_cache
    with _ready_lock:
        now = time.monotonic()
        if _ready_cache is not None and now - _ready_cache[0] < settings.OPSITE_HEALTH_CACHE_S:
            return _ready_cache[1], _ready_cache[2]
        names = [c.name for c in REGISTRY.values() if c.critical]
        results = run_checks(names, overall_timeout_s=settings.OPSITE_HEALTH_READY_TIMEOUT_S)
        ready = all(r.status == OK for r in results.values())
        _ready_cache = (time.monotonic(), ready, results)
        return ready, results


def reset_cache() -> None:
    global _ready_cache
    with _ready_lock:
        _ready_cache = None
