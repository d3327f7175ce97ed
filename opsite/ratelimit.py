"""Fixed-window rate limits kept in the cache, so every process shares one count."""

from __future__ import annotations

import logging
import time

from django.core.cache import cache

log = logging.getLogger(__name__)


def hit(*, scope: str, ident: str, limit: int, window_s: int = 60) -> tuple[bool, int]:
    """Count one hit; return whether it is allowed and seconds until the window resets."""
    now = int(time.time())
    window = now // window_s
    key = f"rl:{scope}:{ident}:{window}"
    retry_after = window_s - now % window_s
    try:
        cache.add(key, 0, timeout=window_s + 1)
        count = cache.incr(key)
    except Exception:
        # A limit is protection, not correctness: with the cache down, serve rather than refuse.
        log.warning("rate limit store unreachable; %s not limited", scope)
        return True, retry_after
    return count <= limit, retry_after
