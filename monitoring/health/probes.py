"""Health checks: a registry of named checks, each run on a worker thread with its own timeout.

A check's probe returns a ``Probe`` (status, detail, figures) or raises; a failure of a
critical check makes the service unready and unhealthy, any other failure or a figure over its
threshold makes it degraded. Results are cached briefly, so a storm of probes costs one round.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connections

OK, DEGRADED, FAILED = "ok", "degraded", "failed"
HEALTHY, UNHEALTHY = "healthy", "unhealthy"


@dataclass(frozen=True)
class Probe:
    status: str = OK
    detail: str = ""
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CheckResult:
    status: str
    ms: float
    critical: bool
    detail: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status, "ms": round(self.ms, 2)}
        if self.detail:
            out["detail"] = self.detail
        out.update(self.data)
        return out


@dataclass(frozen=True)
class HealthCheck:
    name: str
    probe: Callable[[], Probe]
    critical: bool = False  # its failure makes the process unready and unhealthy
    in_ready: bool = False  # reported by /health/ready (critical checks always are)
    timeout_s: float | None = None


REGISTRY: dict[str, HealthCheck] = {}


def register(check: HealthCheck) -> HealthCheck:
    REGISTRY[check.name] = check
    return check


# Checks run on their own threads so a hanging one costs its timeout, never the caller's; the
# threads are few and reused, so database connections stay flat however many probes arrive.
_pool = ThreadPoolExecutor(max_workers=12, thread_name_prefix="health")


def _timed(check: HealthCheck) -> CheckResult:
    started = time.perf_counter()
    try:
        probe = check.probe()
    except Exception as exc:
        return CheckResult(
            FAILED, (time.perf_counter() - started) * 1000, check.critical, f"{type(exc).__name__}: {exc}"
        )
    finally:
        # The pool's threads live on: a connection a check opened goes back to the pool now,
        # or a dozen idle threads would hold a dozen connections and starve the requests.
        connections.close_all()
    return CheckResult(probe.status, (time.perf_counter() - started) * 1000, check.critical, probe.detail, probe.data)


def run_checks(names: list[str], *, overall_timeout_s: float) -> dict[str, CheckResult]:
    started = time.monotonic()
    futures = {name: _pool.submit(_timed, REGISTRY[name]) for name in names}
    results: dict[str, CheckResult] = {}
    for name, future in futures.items():
        check = REGISTRY[name]
        own = check.timeout_s or settings.OPSITE_HEALTH_CHECK_TIMEOUT_S
        remaining = max(0.0, min(own, overall_timeout_s - (time.monotonic() - started)))
        try:
            results[name] = future.result(timeout=remaining)
        except FutureTimeout:
            elapsed = (time.monotonic() - started) * 1000
            results[name] = CheckResult(FAILED, elapsed, check.critical, f"timed out after {own:g} s")
    return results


def overall(results: dict[str, CheckResult]) -> str:
    if any(r.critical and r.status == FAILED for r in results.values()):
        return UNHEALTHY
    if any(r.status != OK for r in results.values()):
        return DEGRADED
    return HEALTHY


class _Cached:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, dict[str, CheckResult]]] = {}

    def get(self, key: str, names: list[str], timeout_s: float) -> dict[str, CheckResult]:
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None and time.monotonic() - hit[0] < settings.OPSITE_HEALTH_CACHE_S:
                return hit[1]
            results = run_checks(names, overall_timeout_s=timeout_s)
            self._entries[key] = (time.monotonic(), results)
            return results


_cache = _Cached()


def readiness() -> tuple[bool, dict[str, CheckResult]]:
    """Ready unless a critical check fails; the other ready checks are reported, not decisive."""
    names = [c.name for c in REGISTRY.values() if c.critical or c.in_ready]
    results = _cache.get("ready", names, settings.OPSITE_HEALTH_READY_TIMEOUT_S)
    return all(r.status == OK for r in results.values() if r.critical), results


def detailed() -> tuple[str, dict[str, CheckResult]]:
    results = _cache.get("detailed", list(REGISTRY), settings.OPSITE_HEALTH_DETAILED_TIMEOUT_S)
    return overall(results), results


def detailed_report() -> tuple[str, dict[str, Any]]:
    """The overall status and the JSON report shown by /health/detailed and ``manage.py health``."""
    from django.utils import timezone

    status, results = detailed()
    _remember_status(status)
    return status, {
        "status": status,
        "service": "opsite",
        "version": settings.OPSITE_VERSION,
        "node": settings.OPSITE_NODE_NAME,
        "timestamp": timezone.now().isoformat(),
        "components": {name: {**r.as_dict(), "critical": r.critical} for name, r in results.items()},
    }


STATUS_KEY = "health:last-status"


def _remember_status(status: str) -> None:
    from django.core.cache import cache

    with contextlib.suppress(Exception):  # the cache is one of the things a report may find down
        cache.set(STATUS_KEY, status, timeout=180)


def last_status(*, compute: bool) -> str | None:
    """The overall status of the newest detailed report on any process (kept by the cache for
    a few minutes, and refreshed every minute by cache warming); without one, computed now
    when ``compute``, else None. Pages read it without waiting on slow checks."""
    from django.core.cache import cache

    try:
        status = cache.get(STATUS_KEY)
    except Exception:
        status = None
    if status is None and compute:
        status = detailed_report()[0]
    return status


def check_database_down() -> bool:
    """The database check, run now with its timeout (not cached): the alert inhibition's source."""
    result = run_checks(["database"], overall_timeout_s=settings.OPSITE_HEALTH_CHECK_TIMEOUT_S)["database"]
    return result.status == FAILED
