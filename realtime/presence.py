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
from dataclasses import dataclass, field
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


def _service_key(restaurant_id: int, minute: int) -> str:
    return redis_key("service", restaurant_id, minute)


def _connected_key(restaurant_id: int, minute: int) -> str:
    return redis_key("service-connected", restaurant_id, minute)


def _boards_key(restaurant_id: int) -> str:
    return redis_key("service-boards", restaurant_id)


SERVICE_KEEP_S = 3 * 3600  # a minute's tallies outlive the snapshot that reads them


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


@dataclass
class ServiceReport:
    """One node's service-level tallies since its last report: counts per (restaurant, epoch
    minute), the seconds of each minute it held a socket of the restaurant, its boards' state
    and the boards that left."""

    counts: dict[tuple[int, int], Counter[str]] = field(default_factory=dict)
    connected: dict[tuple[int, int], set[int]] = field(default_factory=dict)
    boards: dict[int, dict[str, dict[str, Any]]] = field(default_factory=dict)
    gone: dict[int, list[str]] = field(default_factory=dict)

    def empty(self) -> bool:
        return not (self.counts or self.connected or self.boards or self.gone)


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

    # service levels: in this process only (the embedded default has one web process)
    _service: dict[tuple[int, int], Counter[str]]
    _connected: dict[tuple[int, int], set[int]]
    _boards: dict[int, dict[str, dict[str, Any]]]

    def _service_tables(self) -> None:
        if not hasattr(self, "_service"):
            self._service, self._connected, self._boards = {}, {}, {}

    async def record_service(self, report: ServiceReport) -> None:
        with self._lock:
            self._service_tables()
            for (rid, minute), counts in report.counts.items():
                self._service.setdefault((rid, minute), Counter()).update(counts)
            for (rid, minute), seconds in report.connected.items():
                self._connected.setdefault((rid, minute), set()).update(seconds)
            for rid, boards in report.boards.items():
                self._boards.setdefault(rid, {}).update(boards)
            for rid, gone in report.gone.items():
                for board in gone:
                    self._boards.get(rid, {}).pop(board, None)

    def service_minute(self, minute: int) -> dict[int, dict[str, int]]:
        with self._lock:
            self._service_tables()
            rows: dict[int, dict[str, int]] = {}
            for (rid, at), counts in self._service.items():
                if at == minute:
                    rows.setdefault(rid, {}).update(counts)
            for (rid, at), seconds in self._connected.items():
                if at == minute:
                    rows.setdefault(rid, {})["connected_s"] = len(seconds)
            return rows

    def boards(self, restaurant_id: int) -> list[dict[str, Any]]:
        with self._lock:
            self._service_tables()
            return list(self._boards.get(restaurant_id, {}).values())


PRESENCE_CONNECTIONS = 32  # per process (and event loop)
PRESENCE_POOL_WAIT_S = 10.0


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
            # A blocking pool: when a thousand sockets open or close at once their claims and
            # releases wait their turn for a connection, where the default pool refuses the
            # hundred-and-first at once ("Too many connections") and a place would be lost.
            pool = aioredis.BlockingConnectionPool.from_url(
                self.url, max_connections=PRESENCE_CONNECTIONS, timeout=PRESENCE_POOL_WAIT_S, socket_timeout=2,
                socket_connect_timeout=2, decode_responses=True, **cancellable_pool_options(self.url),
            )  # fmt: skip
            client = aioredis.Redis(connection_pool=pool)
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

    async def record_service(self, report: ServiceReport) -> None:
        """Add one node's tallies to the shared ones: counts summed, connected seconds as the
        bits of a per-minute bitmap (any node's socket makes the second connected)."""
        async with self._client().pipeline(transaction=False) as pipe:
            for (rid, minute), counts in report.counts.items():
                key = _service_key(rid, minute)
                for name, n in counts.items():
                    pipe.hincrby(key, name, n)
                pipe.expire(key, SERVICE_KEEP_S)
            for (rid, minute), seconds in report.connected.items():
                key = _connected_key(rid, minute)
                for second in seconds:
                    pipe.setbit(key, second, 1)
                pipe.expire(key, SERVICE_KEEP_S)
            for rid, boards in report.boards.items():
                if boards:
                    pipe.hset(_boards_key(rid), mapping={b: json.dumps(state) for b, state in boards.items()})
                pipe.expire(_boards_key(rid), SERVICE_KEEP_S)
            for rid, gone in report.gone.items():
                if gone:
                    pipe.hdel(_boards_key(rid), *gone)
            await pipe.execute()

    def service_minute(self, minute: int) -> dict[int, dict[str, int]]:
        """Every restaurant's tallies of one minute (epoch minute), with its connected seconds."""
        client = get_redis()
        assert client is not None
        rows: dict[int, dict[str, int]] = {}
        for pattern, connected in ((redis_key("service", "*", minute), False),
                                   (redis_key("service-connected", "*", minute), True)):  # fmt: skip
            keys = [str(k) for k in client.scan_iter(match=pattern, count=1000)]
            if not keys:
                continue
            with client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.bitcount(key) if connected else pipe.hgetall(key)
                values = pipe.execute()
            for key, value in zip(keys, values, strict=True):
                rid = int(key.rsplit(":", 2)[-2])
                row = rows.setdefault(rid, {})
                if connected:
                    row["connected_s"] = int(value)
                else:
                    row.update({str(k): int(v) for k, v in value.items()})
        return rows

    def boards(self, restaurant_id: int) -> list[dict[str, Any]]:
        client = get_redis()
        assert client is not None
        return [json.loads(v) for v in client.hvals(_boards_key(restaurant_id))]


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
