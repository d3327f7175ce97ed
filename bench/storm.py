"""A reconnect storm, driven from outside as real boards and tills drive it: boards follow a
restaurant's feed on one socket process, a till keeps sending orders through another, the
socket process is killed with SIGKILL and started again, and every board reconnects with
jittered exponential backoff and resumes from its ``last_seq``. Used by
``bench/feed_storm.py`` (1,000 boards) and by the test suite (100)."""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import websockets

BACKOFF_BASE_S = 0.25
BACKOFF_CAP_S = 2.0


@dataclass
class Board:
    url: str
    cookie: str
    origin: str
    rng: random.Random
    last_seq: int | None = None
    epoch: str = ""
    first_seq: int | None = None
    seqs: list[int] = field(default_factory=list)
    hellos: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    resets: int = 0
    stopping: bool = False

    async def run(self, connected: asyncio.Event) -> None:
        attempt = 0
        while not self.stopping:
            query = f"?batch=1&last_seq={self.last_seq}&epoch={self.epoch}" if self.last_seq is not None else ""
            try:
                async with websockets.connect(self.url + query, origin=self.origin, open_timeout=10, max_queue=None,
                                              additional_headers={"Cookie": self.cookie}) as ws:  # fmt: skip
                    async for raw in ws:
                        frame = json.loads(raw)
                        kind = frame.get("type", "")
                        if kind == "hello":
                            attempt = 0
                            self.hellos.append((time.monotonic(), frame))
                            if self.last_seq is None:
                                self.last_seq = self.first_seq = frame["seq"]
                                self.epoch = frame["epoch"]
                                connected.set()
                        elif kind.startswith("order."):
                            self.seqs.append(frame["seq"])
                            self.last_seq = frame["seq"]
                        elif kind == "events":  # a page of a replay
                            self.seqs.extend(event["seq"] for event in frame["frames"])
                            self.last_seq = frame["frames"][-1]["seq"]
                        elif kind == "ping":
                            await ws.send('{"type":"pong"}')
                        elif kind == "reset":
                            self.resets += 1
                        if self.stopping:
                            return
            except (TimeoutError, websockets.WebSocketException, OSError):
                pass
            if self.stopping:
                return
            attempt += 1
            await asyncio.sleep(min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** (attempt - 1)) * (0.5 + self.rng.random()))

    def problems(self, last: int) -> tuple[int, int, int]:
        """(lost, duplicated, out of order) against every seq after its first hello up to ``last``."""
        assert self.first_seq is not None
        expected = set(range(self.first_seq + 1, last + 1))
        lost = len(expected - set(self.seqs))
        duplicated = len(self.seqs) - len(set(self.seqs))
        out_of_order = sum(1 for a, b in zip(self.seqs, self.seqs[1:], strict=False) if b <= a)
        return lost, duplicated, out_of_order


@dataclass
class Till:
    """Sends orders at ``rate`` per second, retrying with the same idempotency key as a till
    does; keeps each answer's latency with the time it was sent."""

    base: str
    token: str
    rate: float
    latencies: list[tuple[float, float]] = field(default_factory=list)
    last_seq: int = 0
    failures: int = 0
    stopping: bool = False

    async def run(self) -> None:
        n = 0
        async with httpx.AsyncClient(base_url=self.base, timeout=10) as client:
            next_at = time.monotonic()
            while not self.stopping:
                n += 1
                key = f"storm-{n}-{random.random():.12f}"
                body = {"type": "order.created", "order_id": key, "idempotency_key": key, "total_amount": "7.00",
                        "items_count": 1}  # fmt: skip
                sent = time.monotonic()
                for _ in range(20):
                    try:
                        answer = await client.post("/api/v1/orders/events", json=body,
                                                   headers={"Authorization": f"Bearer {self.token}"})  # fmt: skip
                    except httpx.TransportError:
                        await asyncio.sleep(0.1)
                        continue
                    if answer.status_code in (200, 201):
                        self.last_seq = max(self.last_seq, int(answer.json()["seq"]))
                        self.latencies.append((sent, time.monotonic() - sent))
                        break
                    self.failures += 1
                    await asyncio.sleep(0.1)
                next_at += 1 / self.rate
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))


def p99_ms(values: list[float]) -> float | None:
    if len(values) < 2:
        return None
    return statistics.quantiles(values, n=100, method="inclusive")[98] * 1000


@dataclass
class StormResult:
    boards: int
    orders: int
    lost: int
    duplicated: int
    out_of_order: int
    resets: int
    not_resumed: int  # boards whose reconnection hello did not say "resumed": true
    resumed_within_s: float  # from the process being ready again to the last board's resumed hello
    ingest_p99_normal_ms: float | None
    ingest_p99_storm_ms: float | None
    till_failures: int


async def run_storm(*, ws_url: str, origin: str, cookie: str, ingest_base: str, token: str, boards: int,
                    rate: float, kill: Callable[[], Awaitable[None]], restart: Callable[[], Awaitable[None]],
                    before_s: float = 2.0, after_s: float = 2.0, settle_timeout_s: float = 60.0,
                    seed: int = 7) -> StormResult:  # fmt: skip
    """Connect ``boards`` boards, run the till for ``before_s``, ``kill`` the socket process,
    ``restart`` it, keep the till going ``after_s`` more, then wait for every board to have
    every order and count what went wrong."""
    rng = random.Random(seed)
    connected = [asyncio.Event() for _ in range(boards)]
    fleet = [Board(ws_url, cookie, origin, random.Random(rng.random())) for _ in range(boards)]
    tasks = [asyncio.create_task(board.run(flag)) for board, flag in zip(fleet, connected, strict=True)]
    till = Till(ingest_base, token, rate)
    till_task: asyncio.Task[None] | None = None
    try:
        for flag in connected:
            await asyncio.wait_for(flag.wait(), timeout=60)
        till_task = asyncio.create_task(till.run())
        await asyncio.sleep(before_s)
        storm_started = time.monotonic()
        await kill()
        await restart()
        ready_at = time.monotonic()
        await asyncio.sleep(after_s)
        till.stopping = True
        await till_task
        last = till.last_seq
        deadline = time.monotonic() + settle_timeout_s
        while time.monotonic() < deadline and any((b.last_seq or 0) < last for b in fleet):
            await asyncio.sleep(0.1)
    finally:
        for board in fleet:
            board.stopping = True
        till.stopping = True
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, *([till_task] if till_task else []), return_exceptions=True)
    lost = duplicated = out_of_order = 0
    for board in fleet:
        a, b, c = board.problems(last)
        lost, duplicated, out_of_order = lost + a, duplicated + b, out_of_order + c
    again = [next(((t, f) for t, f in board.hellos if t >= storm_started), None) for board in fleet]
    resumed_at = [t for t, f in (h for h in again if h is not None) if f.get("resumed") is True]
    storm_end = max(resumed_at) if resumed_at else ready_at
    normal = [lat for sent, lat in till.latencies if sent < storm_started]
    storm = [lat for sent, lat in till.latencies if storm_started <= sent <= storm_end]
    return StormResult(
        boards=boards, orders=len(till.latencies), lost=lost, duplicated=duplicated, out_of_order=out_of_order,
        resets=sum(b.resets for b in fleet), not_resumed=boards - len(resumed_at),
        resumed_within_s=storm_end - ready_at, ingest_p99_normal_ms=p99_ms(normal),
        ingest_p99_storm_ms=p99_ms(storm), till_failures=till.failures,
    )  # fmt: skip
