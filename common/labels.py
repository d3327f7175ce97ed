"""Bounded label values: a value a client chooses (a payment method, a screen name) becomes a
series, a Redis hash field or a table row, so each scope admits at most ``limit`` distinct
values and folds every later one into ``other``.

Admission is shared across processes and hosts through a Redis set per scope (when Redis is
configured; otherwise per process), with each process remembering what it has seen so a known
value costs no round trip. Two processes admitting at the same instant can overshoot the limit
by one each; never more.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from .redis import get_redis, redis_key

OTHER = "other"
_ADMIT = """
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return 1 end
if redis.call('SCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('SADD', KEYS[1], ARGV[1]); redis.call('EXPIRE', KEYS[1], ARGV[3]); return 1
end
return 0
"""


class LabelBudget:
    def __init__(self, namespace: str, limit: Callable[[], int], *, keep_s: int = 8 * 24 * 3600) -> None:
        """``limit`` is read at each admission, so a settings change applies at once."""
        self.namespace, self._limit, self.keep_s = namespace, limit, keep_s
        self._seen: dict[str, set[str]] = {}  # scope -> admitted values
        self._full: dict[str, set[str]] = {}  # scope -> values refused (the scope is full)
        self._lock = threading.Lock()

    @property
    def limit(self) -> int:
        return self._limit()

    def admit(self, scope: str, value: str) -> str:
        """``value`` when the scope has room for it (or has it already), else ``other``."""
        with self._lock:
            if value in self._seen.get(scope, ()):
                return value
            if value in self._full.get(scope, ()):
                return OTHER
        admitted = self._admit_shared(scope, value)
        with self._lock:
            target = self._seen if admitted else self._full
            bucket = target.setdefault(scope, set())
            if len(bucket) < self.limit * 4:  # the refusal memory is bounded too
                bucket.add(value)
        return value if admitted else OTHER

    def _admit_shared(self, scope: str, value: str) -> bool:
        client = get_redis()
        if client is not None:
            key = redis_key("labels", self.namespace, scope)
            try:
                return bool(client.eval(_ADMIT, 1, key, value, self.limit, self.keep_s))
            except Exception:  # noqa: S110 - Redis is away: bound this process at least
                pass
        with self._lock:
            return len(self._seen.get(scope, ())) < self.limit
