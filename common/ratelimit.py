"""Fixed-window rate limits shared by every process: one Redis round trip a hit, or the
local cache on the embedded default (one web process)."""

from __future__ import annotations

import logging
import time

from django.core.cache import cache

from .redis import get_redis, redis_key

log = logging.getLogger(__name__)


def _count(key: str, window_s: int) -> int:
    client = get_redis()
    if client is None:
        cache.add(key, 0, timeout=window_s + 1)
        return int(cache.incr(key))
    pipe = client.pipeline(transaction=False)
    pipe.incr(key)
    pipe.expire(key, window_s + 1, nx=True)
    count, _ = pipe.execute()
    return int(count)


def hit(*, scope: str, ident: str, limit: int, window_s: int = 60) -> tuple[bool, int]:
    """Count one hit; return whether it is allowed and seconds until the window resets."""
    now = int(time.time())
    key = redis_key("rl", scope, ident, now // window_s)
    retry_after = window_s - now % window_s
    try:
        count = _count(key, window_s)
    except Exception as exc:
        # A limit is protection, not correctness: with the store down, serve rather than refuse.
        log.warning("rate limit store unreachable (%s); %s not limited", exc, scope)
        return True, retry_after
    return count <= limit, retry_after
