"""The process's one synchronous Redis client, for the few things Django's cache API can't say
in one round trip. None when no Redis is configured (the embedded default)."""

from __future__ import annotations

import redis
from django.conf import settings

_client: redis.Redis | None = None


def redis_key(*parts: object) -> str:
    """A key in this deployment's own space (REDIS_PREFIX), so deployments can share a Redis."""
    return ":".join([settings.REDIS_PREFIX, *map(str, parts)])


def get_redis() -> redis.Redis | None:
    global _client
    if not settings.REDIS_URL:
        return None
    if _client is None:
        _client = redis.Redis.from_url(
            settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2, decode_responses=True
        )
    return _client
