"""The cache manager: read-through caching for expensive reads, with hits and misses counted
per namespace, a ``@cached`` decorator, and invalidation by key, by pattern and by namespace.

A key names everything the value depends on (for the dashboard: the range, the hosts and the
newest snapshot row), so new data makes a new key and most values never need deleting; the
timeout only bounds how long an unused value stays. Where a value can change under the same key
(settings edited, data corrected by hand), invalidate it: one key, every key of a namespace, or
every key matching a glob, on the Redis cache (a SCAN, never KEYS) or the local-memory one.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import json
import logging
import re
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from django.core.cache import cache, caches
from django.core.cache.backends.locmem import LocMemCache
from django.core.cache.backends.redis import RedisCache

log = logging.getLogger(__name__)
T = TypeVar("T")
P = ParamSpec("P")
_MISSING = object()
NAMESPACES: set[str] = set()  # every namespace read or declared in this process, for the hit ratios
_NAMESPACE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
SCAN_BATCH = 500


class CacheError(ValueError):
    """A request the cache manager cannot carry out (a bad namespace or pattern, a backend that
    cannot list its keys); the message says which."""


def _namespace(namespace: str) -> str:
    if namespace in NAMESPACES:  # checked once: this runs on every cached read
        return namespace
    if not _NAMESPACE.match(namespace):
        raise CacheError(f"a cache namespace is 1-64 of a-z, 0-9, '.', '_', '-' (starting with a letter or digit): "
                         f"{namespace!r}")  # fmt: skip
    NAMESPACES.add(namespace)
    return namespace


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


def read_through(namespace: str, parts: tuple[Any, ...], compute: Callable[[], T], *, timeout: float,
                 refresh: bool = False) -> T:  # fmt: skip
    """The cached value for ``parts``, computed and stored on a miss; ``refresh`` computes and
    stores it whatever is there (warming)."""
    _namespace(namespace)
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


def hit_ratios(namespaces: list[str] | None = None) -> dict[str, dict[str, float | int | None]]:
    """Hits, misses and the hit ratio per namespace (each one this process knows when none are
    named) since the counters were created."""
    namespaces = sorted(NAMESPACES) if namespaces is None else namespaces
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


def cached(
    namespace: str, *, ttl: float, skip: bool | Callable[[], bool] = False
) -> Callable[[Callable[P, T]], Callable[P, T]]:
    """Cache a function's result per arguments (which must be JSON-able, or stable as text)
    for ``ttl`` seconds in ``namespace``. ``skip`` (a flag, or a function asked on every call,
    such as ``lambda: settings.DEBUG``) calls the function straight through. The wrapped
    function gains ``refresh(*args)`` (compute and store now: warming), ``invalidate(*args)``
    (that entry) and ``invalidate_all()`` (the namespace)."""
    _namespace(namespace)
    if ttl <= 0:
        raise CacheError(f"a cached function needs a ttl over 0 seconds, not {ttl}")

    def decorate(function: Callable[P, T]) -> Callable[P, T]:
        def parts(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
            return (function.__module__, function.__qualname__, args, sorted(kwargs.items()))

        @functools.wraps(function)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            if skip() if callable(skip) else skip:
                return function(*args, **kwargs)
            return read_through(namespace, parts(args, kwargs), lambda: function(*args, **kwargs), timeout=ttl)

        def refresh(*args: Any, **kwargs: Any) -> T:
            return read_through(namespace, parts(args, kwargs), lambda: function(*args, **kwargs), timeout=ttl,
                                refresh=True)  # fmt: skip

        def invalidate_one(*args: Any, **kwargs: Any) -> bool:
            return invalidate(namespace, *parts(args, kwargs))

        wrapper.refresh = refresh  # type: ignore[attr-defined]
        wrapper.invalidate = invalidate_one  # type: ignore[attr-defined]
        wrapper.invalidate_all = lambda: invalidate_namespace(namespace)  # type: ignore[attr-defined]
        wrapper.namespace = namespace  # type: ignore[attr-defined]
        return wrapper

    return decorate


def invalidate(namespace: str, *parts: Any) -> bool:
    """Delete the entry for ``parts``; whether there was one."""
    return bool(cache.delete(cache_key(_namespace(namespace), *parts)))


def invalidate_namespace(namespace: str) -> int:
    """Delete every entry of a namespace; how many there were."""
    return invalidate_pattern(f"c:{_namespace(namespace)}:*")


def invalidate_pattern(pattern: str) -> int:
    """Delete every key of this deployment's cache that matches the glob ``pattern`` (as the
    code names keys, before the deployment's prefix: ``c:dashboard-*:*``); how many."""
    if not pattern or len(pattern) > 200 or any(ch.isspace() for ch in pattern):
        raise CacheError(f"a cache key pattern is 1-200 characters without spaces: {pattern!r}")
    backend = caches["default"]  # the backend itself: ``cache`` is a proxy to it
    if isinstance(backend, RedisCache):
        return _redis_delete_matching(backend, pattern)
    if isinstance(backend, LocMemCache):
        return _locmem_delete_matching(backend, pattern)
    raise CacheError(f"invalidating by pattern needs the Redis or local-memory cache, not {type(backend).__name__}")


def _redis_delete_matching(redis_cache: RedisCache, pattern: str) -> int:
    # the deployment's prefix and version are literal text in the match, only ``pattern`` globs
    prefix = re.sub(r"([\\*?\[\]])", r"\\\1", redis_cache.make_key(""))
    client = redis_cache._cache.get_client(write=True)  # type: ignore[attr-defined]
    deleted, batch = 0, []
    for key in client.scan_iter(match=prefix + pattern, count=SCAN_BATCH):
        batch.append(key)
        if len(batch) >= SCAN_BATCH:
            deleted += int(client.unlink(*batch))
            batch.clear()
    if batch:
        deleted += int(client.unlink(*batch))
    return deleted


def _locmem_delete_matching(local: Any, pattern: str) -> int:
    full = local.make_key(pattern)
    with local._lock:
        keys = [key for key in list(local._cache) if fnmatch.fnmatchcase(key, full)]
        for key in keys:
            local._delete(key)
    return len(keys)
