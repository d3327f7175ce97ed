"""Who holds which sockets: per node counts with an expiry, so a dead node's sockets vanish.

Each node (one web process) publishes its whole count table, not increments, so a Redis
restart or a missed message heals at the next publish. With no Redis (the embedded default)
there is one web process and the table lives in it.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import weakref
from collections import Counter
from typing import Any

import redis.asyncio as aioredis
from django.conf import settings

from common.redis import get_redis, redis_key


def _nodes_key() -> str:
    return redis_key("presence", "nodes")


def _node_key(node: str) -> str:
    return redis_key("presence", "node", node)


class LocalPresence:
    def __init__(self) -> None:
        self._tables: dict[str, tuple[float, dict[str, int]]] = {}
        self._lock = threading.Lock()

    async def publish(self, node: str, counts: dict[str, int], ttl: float) -> None:
        with self._lock:
            self._tables[node] = (time.time() + ttl, dict(counts))

    async def user_sockets(self, user_id: int, *, except_node: str = "") -> int:
        key = f"u:{user_id}"
        return sum(counts.get(key, 0) for node, counts in self.tables().items() if node != except_node)

    def tables(self) -> dict[str, dict[str, int]]:
        now = time.time()
        with self._lock:
            return {node: counts for node, (expires, counts) in self._tables.items() if expires > now}


class RedisPresence:
    def __init__(self, url: str) -> None:
        self.url = url
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = (
            weakref.WeakKeyDictionary()
        )

    def _client(self) -> aioredis.Redis:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = aioredis.from_url(self.url, socket_timeout=2, socket_connect_timeout=2, decode_responses=True)
            self._clients[loop] = client
        return client

    async def publish(self, node: str, counts: dict[str, int], ttl: float) -> None:
        now = time.time()
        key = _node_key(node)
        async with self._client().pipeline(transaction=True) as pipe:
            pipe.set(key, json.dumps(counts), ex=max(1, int(ttl)))
            pipe.zadd(_nodes_key(), {node: now + ttl})
            pipe.zremrangebyscore(_nodes_key(), "-inf", now)
            await pipe.execute()

    async def user_sockets(self, user_id: int, *, except_node: str = "") -> int:
        client = self._client()
        live = await client.zrangebyscore(_nodes_key(), time.time(), "+inf")
        nodes = [str(n) for n in live if n != except_node]
        if not nodes:
            return 0
        raw = await client.mget([_node_key(n) for n in nodes])
        return sum(json.loads(r).get(f"u:{user_id}", 0) for r in raw if r)

    def tables(self) -> dict[str, dict[str, int]]:
        client = get_redis()
        assert client is not None
        nodes = [str(n) for n in client.zrangebyscore(_nodes_key(), time.time(), "+inf")]
        raw = client.mget([_node_key(n) for n in nodes]) if nodes else []
        return {node: json.loads(r) for node, r in zip(nodes, raw, strict=True) if r}


_presence: LocalPresence | RedisPresence | None = None


def get_presence() -> LocalPresence | RedisPresence:
    global _presence
    if _presence is None:
        _presence = RedisPresence(settings.REDIS_URL) if settings.REDIS_URL else LocalPresence()
    return _presence


def presence_summary() -> dict[str, Any]:
    """Open sockets per node and per restaurant, from one read of the live nodes' tables."""
    tables = get_presence().tables()
    by_node = {node: sum(n for k, n in counts.items() if k.startswith("r:")) for node, counts in tables.items()}
    by_restaurant: Counter[str] = Counter()
    for counts in tables.values():
        by_restaurant.update({k[2:]: n for k, n in counts.items() if k.startswith("r:")})
    return {
        "total": sum(by_node.values()),
        "by_node": by_node,
        "by_restaurant": {slug: n for slug, n in by_restaurant.items() if n},
    }
