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
from common.redis_connection import cancellable_pool_options


def _nodes_key() -> str:
    return redis_key("presence", "nodes")


def _node_key(node: str) -> str:
    return redis_key("presence", "node", node)


def _user_key(user_id: int) -> str:
    return redis_key("presence", "user", user_id)


# One user's places across nodes, taken atomically: the sum of the places held by live nodes
# (this one always counts; a node whose presence expired died, and its places go with it) is
# compared with the cap and, when below, this node's count is raised — all in one step, so two
# processes taking the last place at once cannot both get it.
_CLAIM = """
local now, cap, node = tonumber(ARGV[3]), tonumber(ARGV[2]), ARGV[1]
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[4]), node)
local fields = redis.call('HGETALL', KEYS[1])
local total = 0
for i = 1, #fields, 2 do
  local holder, n = fields[i], tonumber(fields[i + 1])
  if holder == node then
    total = total + n
  else
    local alive = redis.call('ZSCORE', KEYS[2], holder)
    if alive and tonumber(alive) > now then total = total + n else redis.call('HDEL', KEYS[1], holder) end
  end
end
if total >= cap then return 0 end
redis.call('HINCRBY', KEYS[1], node, 1)
redis.call('EXPIRE', KEYS[1], 86400)
return 1
"""
_RELEASE = """
local left = redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
if left <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end
return left
"""
_COUNT = """
local now = tonumber(ARGV[1])
local fields = redis.call('HGETALL', KEYS[1])
local total = 0
for i = 1, #fields, 2 do
  local alive = redis.call('ZSCORE', KEYS[2], fields[i])
  if alive and tonumber(alive) > now then total = total + tonumber(fields[i + 1]) end
end
return total
"""


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
            client = aioredis.from_url(self.url, socket_timeout=2, socket_connect_timeout=2, decode_responses=True,
                                       **cancellable_pool_options(self.url))  # fmt: skip
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

    async def claim(self, node: str, user_id: int, cap: int, ttl: float) -> bool:
        """Take one of ``cap`` places of this user across every node, or refuse."""
        taken = await self._client().eval(_CLAIM, 2, _user_key(user_id), _nodes_key(), node, cap, time.time(), ttl)
        return bool(taken)

    async def release(self, node: str, user_id: int) -> None:
        await self._client().eval(_RELEASE, 1, _user_key(user_id), node)

    async def user_places(self, user_id: int) -> int:
        return int(await self._client().eval(_COUNT, 2, _user_key(user_id), _nodes_key(), time.time()))

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
