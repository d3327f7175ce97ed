"""External HTTP services opsite depends on, each behind a circuit breaker.

Named in ``OPSITE_DEPENDENCIES`` as ``name=url`` pairs. After ``OPSITE_DEPENDENCY_FAILURES``
failures in a row a breaker opens: the service is reported down without being called, until
``OPSITE_DEPENDENCY_RESET_S`` have passed and one trial call is let through (half-open).
"""

from __future__ import annotations

import threading
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from backups.selectors import storage_check, storage_remote, storage_where
from common.redaction import redact_url

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


@dataclass
class CircuitBreaker:
    failures: int = 0
    opened_at: float | None = None

    def state(self, now: float) -> str:
        if self.opened_at is None:
            return CLOSED
        return HALF_OPEN if now - self.opened_at >= settings.OPSITE_DEPENDENCY_RESET_S else OPEN

    def succeeded(self) -> None:
        self.failures, self.opened_at = 0, None

    def failed(self, now: float) -> None:
        self.failures += 1
        if self.failures >= settings.OPSITE_DEPENDENCY_FAILURES:
            self.opened_at = now


_breakers: dict[str, CircuitBreaker] = {}
_lock = threading.Lock()


def configured() -> dict[str, str]:
    return dict(settings.OPSITE_DEPENDENCIES)


def _call(url: str) -> int:
    request = urllib.request.Request(url, method="GET", headers={"User-Agent": "opsite-health"})  # noqa: S310
    with urllib.request.urlopen(request, timeout=settings.OPSITE_DEPENDENCY_TIMEOUT_S) as response:  # noqa: S310
        return int(response.status)


def _checked(name: str, shown: str, call: Callable[[], tuple[bool, str]]) -> dict[str, Any]:
    """Call ``call`` (ok, detail) through the dependency's circuit breaker; its result as a row."""
    now = time.monotonic()
    with _lock:
        breaker = _breakers.setdefault(name, CircuitBreaker())
        state = breaker.state(now)
    if state == OPEN:
        return {"name": name, "url": shown, "status": "failed", "ms": 0.0, "circuit": OPEN,
                "detail": f"circuit open after {breaker.failures} failures"}  # fmt: skip
    started = time.perf_counter()
    try:
        ok, detail = call()
    except Exception as exc:
        ok, detail = False, f"{type(exc).__name__}: {exc}"
    ms = (time.perf_counter() - started) * 1000
    with _lock:
        if ok:
            breaker.succeeded()
        else:
            breaker.failed(time.monotonic())
        circuit = breaker.state(time.monotonic())
    return {"name": name, "url": shown, "status": "ok" if ok else "failed", "ms": round(ms, 2),
            "circuit": circuit, "detail": detail}  # fmt: skip


def check_one(name: str, url: str) -> dict[str, Any]:
    def call() -> tuple[bool, str]:
        code = _call(url)
        return code < 500, f"HTTP {code}"

    return _checked(name, redact_url(url), call)


BACKUP_STORAGE = "backup_storage"


def check_backup_storage() -> dict[str, Any] | None:
    """The remote backup store (S3) as a dependency: a listing of its root, through its breaker;
    None when backups are kept on a local disk (the disk is watched as a host figure)."""
    if not storage_remote():
        return None

    def call() -> tuple[bool, str]:
        return True, f"listed {storage_check()}"

    return _checked(BACKUP_STORAGE, storage_where(), call)


def check_all() -> list[dict[str, Any]]:
    deps = configured()
    if not deps:
        return []
    with ThreadPoolExecutor(max_workers=min(8, len(deps))) as pool:
        return list(pool.map(lambda item: check_one(*item), deps.items()))
