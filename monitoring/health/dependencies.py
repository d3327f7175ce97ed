"""External HTTP services opsite depends on, each behind a circuit breaker.

Named in ``OPSITE_DEPENDENCIES`` as ``name=url`` pairs. After ``OPSITE_DEPENDENCY_FAILURES``
failures in a row a breaker opens: the service is reported down without being called, until
``OPSITE_DEPENDENCY_RESET_S`` have passed and one trial call is let through (half-open).
"""

from __future__ import annotations

import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from django.conf import settings

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


def check_one(name: str, url: str) -> dict[str, Any]:
    now = time.monotonic()
    with _lock:
        breaker = _breakers.setdefault(name, CircuitBreaker())
        state = breaker.state(now)
    if state == OPEN:
        return {"name": name, "url": redact_url(url), "status": "failed", "ms": 0.0, "circuit": OPEN,
                "detail": f"circuit open after {breaker.failures} failures"}  # fmt: skip
    started = time.perf_counter()
    try:
        code = _call(url)
        ok, detail = code < 500, f"HTTP {code}"
    except Exception as exc:
        ok, detail = False, f"{type(exc).__name__}: {exc}"
    ms = (time.perf_counter() - started) * 1000
    with _lock:
        if ok:
            breaker.succeeded()
        else:
            breaker.failed(time.monotonic())
        circuit = breaker.state(time.monotonic())
    return {"name": name, "url": redact_url(url), "status": "ok" if ok else "failed", "ms": round(ms, 2),
            "circuit": circuit, "detail": detail}  # fmt: skip


def check_all() -> list[dict[str, Any]]:
    deps = configured()
    if not deps:
        return []
    with ThreadPoolExecutor(max_workers=min(8, len(deps))) as pool:
        return list(pool.map(lambda item: check_one(*item), deps.items()))
