"""Outbound calls in one place: a circuit breaker and a retry policy for every call opsite makes
to another service (dependency checks, the S3 backup store, alert channels' webhooks and mail).

**Retry** (tenacity): a call is tried up to ``attempts`` times, waiting ``backoff_s`` doubled each
time with jitter, on the errors that say the other side may answer next time; a call that
fails every attempt is one failure to its breaker.

**Breaker**: after ``failures`` failed calls in a row the circuit opens and calls fail at once
(``CircuitOpen``) without reaching the service, for ``reset_s``; then one caller wins the single
trial call (half-open), which closes the circuit again or opens it for another period. The
state machine is ``circuit_state``; where a breaker keeps its state varies:

- the shared breakers here keep it in Redis when one is configured, so every process of the
  deployment sees the same circuit, one admin reset closes it everywhere, and only one process
  makes the trial; without Redis (the embedded default) in this process;
- an alert channel's breaker keeps it on the channel's row, next to its notification log
  (``monitoring.alerts.delivery``), with the same state machine.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import httpx
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from common.redis import get_redis, redis_key

log = logging.getLogger(__name__)
T = TypeVar("T")
Moment = TypeVar("Moment", float, datetime)  # seconds since the epoch, or a datetime

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
STATE_CODES = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2}


class CircuitOpen(RuntimeError):
    """The circuit of the service is open: the call was not made."""


@dataclass(frozen=True)
class BreakerPolicy:
    failures: int  # failed calls in a row that open the circuit
    reset_s: float  # how long it stays open before one trial call


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 1
    backoff_s: float = 0.2
    max_backoff_s: float = 5.0


def circuit_state(*, failures: int, open_until: Moment | None, now: Moment, policy: BreakerPolicy) -> str:
    """Closed below the failure count (or never opened); open until its time; then half-open."""
    if failures < policy.failures or open_until is None:
        return CLOSED
    return OPEN if now < open_until else HALF_OPEN


def transient(exc: BaseException) -> bool:
    """Worth another attempt: the network failed or the other side said it is overloaded or down
    (5xx, 429); a refusal of what was sent (other 4xx) is not."""
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code >= 500 or exc.response.status_code == 429
    return isinstance(exc, (OSError, httpx.TransportError, TimeoutError))


def retried(call: Callable[[], T], policy: RetryPolicy) -> T:
    """``call`` under the retry policy; the last error is raised when every attempt failed."""
    retrying = Retrying(
        stop=stop_after_attempt(max(1, policy.attempts)),
        wait=wait_exponential_jitter(multiplier=policy.backoff_s, max=policy.max_backoff_s, jitter=policy.backoff_s),
        retry=retry_if_exception(transient),
        reraise=True,
    )
    return retrying(call)


class _Store:
    """Where the shared breakers keep (failures, open_until): Redis when configured, else here."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._local: dict[str, tuple[int, float | None]] = {}
        self._trials: dict[str, float] = {}

    def read(self, name: str) -> tuple[int, float | None]:
        client = get_redis()
        if client is None:
            with self._lock:
                return self._local.get(name, (0, None))
        raw: Any = client.hmget(redis_key("breaker", name), ["failures", "open_until"])
        failures, open_until = raw
        return int(failures or 0), (float(open_until) if open_until else None)

    def failed(self, name: str, now: float, policy: BreakerPolicy) -> tuple[int, float | None]:
        client = get_redis()
        if client is None:
            with self._lock:
                failures = self._local.get(name, (0, None))[0] + 1
                open_until = now + policy.reset_s if failures >= policy.failures else None
                self._local[name] = (failures, open_until)
                return failures, open_until
        key = redis_key("breaker", name)
        failures = int(client.hincrby(key, "failures", 1))
        open_until = None
        if failures >= policy.failures:
            open_until = now + policy.reset_s
            client.hset(key, "open_until", str(open_until))
        client.sadd(redis_key("breakers"), name)
        return failures, open_until

    def succeeded(self, name: str) -> None:
        client = get_redis()
        if client is None:
            with self._lock:
                self._local[name] = (0, None)
            return
        client.hset(redis_key("breaker", name), mapping={"failures": 0, "open_until": ""})
        client.sadd(redis_key("breakers"), name)

    def claim_trial(self, name: str, lease_s: float) -> bool:
        """Whether this caller makes the half-open trial (one caller per lease, across processes)."""
        client = get_redis()
        if client is None:
            with self._lock:
                now = time.monotonic()
                if self._trials.get(name, 0.0) > now:
                    return False
                self._trials[name] = now + lease_s
                return True
        return bool(client.set(redis_key("breaker-trial", name), "1", nx=True, px=int(lease_s * 1000)))

    def names(self) -> list[str]:
        client = get_redis()
        if client is None:
            with self._lock:
                return sorted(self._local)
        members: Any = client.smembers(redis_key("breakers"))
        return sorted(str(m) for m in members)

    def reset(self, name: str) -> None:
        client = get_redis()
        if client is None:
            with self._lock:
                self._local.pop(name, None)
                self._trials.pop(name, None)
            return
        client.delete(redis_key("breaker", name), redis_key("breaker-trial", name))


_store = _Store()
_policies: dict[str, BreakerPolicy] = {}


def call_through(name: str, call: Callable[[], T], *, breaker: BreakerPolicy, retry: RetryPolicy | None = None) -> T:
    """Make an outbound call through the breaker named ``name`` (and the retry policy); raises
    ``CircuitOpen`` without calling while the circuit is open, else what the call raised."""
    _policies[name] = breaker
    now = time.time()
    try:
        failures, open_until = _store.read(name)
    except Exception as exc:  # the breaker's store is down: call, as if there were none
        log.warning("circuit of %s unreadable (%s); calling", name, exc)
        return retried(call, retry or RetryPolicy())
    state = circuit_state(failures=failures, open_until=open_until, now=now, policy=breaker)
    if state == OPEN or (state == HALF_OPEN and not _store.claim_trial(name, lease_s=max(5.0, breaker.reset_s))):
        raise CircuitOpen(f"circuit open after {failures} failures in a row")
    try:
        result = retried(call, retry or RetryPolicy())
    except Exception:
        _record(lambda: _store.failed(name, time.time(), breaker))
        raise
    if failures or open_until:
        _record(lambda: _store.succeeded(name))
    return result


def _record(write: Callable[[], object]) -> None:
    try:
        write()
    except Exception as exc:
        log.warning("could not record a breaker outcome: %s", exc)


def circuit(name: str, policy: BreakerPolicy | None = None) -> dict[str, Any]:
    """A breaker's state now: name, state, failures in a row, and until when it stays open."""
    policy = policy or _policies.get(name) or BreakerPolicy(1, 0.0)  # stored open_until says it opened
    failures, open_until = _store.read(name)
    state = circuit_state(failures=failures, open_until=open_until, now=time.time(), policy=policy)
    return {"name": name, "state": state, "failures": failures,
            "open_until": open_until if state != CLOSED else None}  # fmt: skip


def circuits() -> list[dict[str, Any]]:
    """Every shared breaker that has recorded a call (on any process, with Redis)."""
    try:
        return [circuit(name) for name in _store.names()]
    except Exception as exc:
        log.warning("circuit states unreadable: %s", exc)
        return []


def circuit_reset(name: str) -> None:
    """Close a breaker now (an operator who fixed the service need not wait for the trial)."""
    _store.reset(name)
