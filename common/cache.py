"""Read-through caching for expensive reads, with hits and misses counted per namespace.

A key names everything the value depends on (for the dashboard: the range, the hosts and the
newest snapshot row), so new data makes a new key and nothing has to be deleted by hand;
the timeout only bounds how long an unused value stays.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from django.core.cache import cache

log = logging.getLogger(__name__)
T = TypeVar("T")
_MISSING = object()


def cache_key(namespace: str, *parts: Any) -> str:
    digest = hashlib.blake2s(json.dumps(parts, default=str).encode(), digest_size=12).hexdigest()
    return f"c:{namespace}:{digest}"


def _count(namespace: str, outcome: str) -> None:
    key = f"cstat:{namespace}:{outcome}"
    try:
        try:
            cache.incr(key)  # one round trip once the counter exists
        except ValueError:
            cache.add(key, 0, timeout=None)
            cache.incr(key)
    except Exception as exc:  # counting must never break the read it counts
        log.debug("cache stats not counted: %s", exc)


def cached(namespace: str, parts: tuple[Any, ...], compute: Callable[[], T], *, timeout: float,
           refresh: bool = False) -> T:  # fmt: skip
    """The cached value for ``parts``, computed and stored on a miss; ``refresh`` computes and
    stores it whatever is there (warming)."""
    if not refresh:
        try:
            value = cache.get(cache_key(namespace, *parts), _MISSING)
        except Exception as exc:  # the cache is down: compute, as if there were none
            log.warning("cache unavailable for %s: %s", namespace, exc)
            return compute()
        if value is not _MISSING:
            _count(namespace, "hit")
            return value
        _count(namespace, "miss")
    value = compute()
    store(namespace, parts, value, timeout=timeout)
    return value


def store(namespace: str, parts: tuple[Any, ...], value: Any, *, timeout: float) -> None:
    """Put a freshly computed value in place (what warming does ahead of the first reader)."""
    try:
        cache.set(cache_key(namespace, *parts), value, timeout=timeout)
    except Exception as exc:
        log.warning("could not cache %s: %s", namespace, exc)


def hit_ratios(namespaces: list[str]) -> dict[str, dict[str, float | int | None]]:
    """Hits, misses and the hit ratio per namespace since the counters were created."""
    keys = [f"cstat:{ns}:{outcome}" for ns in namespaces for outcome in ("hit", "miss")]
    try:
        values = cache.get_many(keys)
    except Exception:
        values = {}
    result: dict[str, dict[str, float | int | None]] = {}
    for ns in namespaces:
        hits, misses = int(values.get(f"cstat:{ns}:hit", 0)), int(values.get(f"cstat:{ns}:miss", 0))
        result[ns] = {"hits": hits, "misses": misses, "ratio": hits / (hits + misses) if hits + misses else None}
    return result
