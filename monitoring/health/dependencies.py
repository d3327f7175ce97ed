"""External HTTP services opsite depends on, each behind a circuit breaker (``common.resilience``).

Named in ``OPSITE_DEPENDENCIES`` as ``name=url`` pairs. After ``OPSITE_DEPENDENCY_FAILURES``
failures in a row a breaker opens: the service is reported down without being called, until
``OPSITE_DEPENDENCY_RESET_S`` have passed and one trial call is let through (half-open). With
Redis the breakers are shared by every process. The S3 backup store is checked through the
breaker its uploads use.
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.conf import settings

from backups.selectors import STORE_BREAKER, storage_check, storage_remote, storage_where
from common.redaction import redact_url
from common.resilience import OPEN, BreakerPolicy, CircuitOpen, call_through, circuit, circuits


class ServiceDown(RuntimeError):
    pass


def breaker_name(name: str) -> str:
    return f"dependency:{name}"


def _policy() -> BreakerPolicy:
    return BreakerPolicy(settings.OPSITE_DEPENDENCY_FAILURES, settings.OPSITE_DEPENDENCY_RESET_S)


# Where circuits are kept besides the shared breakers (the alert channels', on their rows),
# registered by the apps that own them.
CIRCUIT_SOURCES: list[Callable[[], list[dict[str, Any]]]] = []


def all_circuits() -> list[dict[str, Any]]:
    """Every circuit breaker: the shared ones (dependencies, the S3 store) and each source's."""
    rows = circuits()
    for source in CIRCUIT_SOURCES:
        rows.extend(source())
    return rows


def configured() -> dict[str, str]:
    return dict(settings.OPSITE_DEPENDENCIES)


def _call(url: str) -> int:
    request = urllib.request.Request(url, method="GET", headers={"User-Agent": "opsite-health"})  # noqa: S310
    with urllib.request.urlopen(request, timeout=settings.OPSITE_DEPENDENCY_TIMEOUT_S) as response:  # noqa: S310
        return int(response.status)


def _checked(name: str, shown: str, breaker: str, call: Callable[[], str]) -> dict[str, Any]:
    """The row of one dependency: ``call`` (through its breaker) answers what it found or raises."""
    started = time.perf_counter()
    row: dict[str, Any] = {"name": name, "url": shown}
    try:
        detail, ok = call(), True
    except CircuitOpen as exc:
        return {**row, "status": "failed", "ms": 0.0, "circuit": OPEN, "detail": str(exc)}
    except Exception as exc:
        detail, ok = f"{type(exc).__name__}: {exc}", False
    ms = round((time.perf_counter() - started) * 1000, 2)
    return {**row, "status": "ok" if ok else "failed", "ms": ms, "circuit": circuit(breaker)["state"],
            "detail": detail}  # fmt: skip


def check_one(name: str, url: str) -> dict[str, Any]:
    def call() -> str:
        code = _call(url)
        if code >= 500:
            raise ServiceDown(f"HTTP {code}")
        return f"HTTP {code}"

    return _checked(name, redact_url(url), breaker_name(name),
                    lambda: call_through(breaker_name(name), call, breaker=_policy()))  # fmt: skip


BACKUP_STORAGE = "backup_storage"


def check_backup_storage() -> dict[str, Any] | None:
    """The remote backup store (S3) as a dependency: a listing of its root, through the breaker
    its uploads use; None when backups are kept on a local disk (watched as a host figure)."""
    if not storage_remote():
        return None
    return _checked(BACKUP_STORAGE, storage_where(), STORE_BREAKER, lambda: f"listed {storage_check()}")


def check_all() -> list[dict[str, Any]]:
    deps = configured()
    if not deps:
        return []
    with ThreadPoolExecutor(max_workers=min(8, len(deps))) as pool:
        return list(pool.map(lambda item: check_one(*item), deps.items()))
