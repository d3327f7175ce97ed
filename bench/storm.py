"""A reconnect storm, driven from outside as real boards and tills drive it: boards follow a
restaurant's feed on one socket process, a till keeps sending orders through another, the
socket process is killed with SIGKILL and started again, and every board reconnects with
jittered exponential backoff and resumes from its ``last_seq``. The boards are a Node.js fleet
(``storm_boards.mjs``), the till and the orchestration are here. Used by
``bench/feed_storm.py`` (1,000 boards) and by the test suite (100)."""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

BOARDS = Path(__file__).with_name("storm_boards.mjs")


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
    resumed_median_s: float  # ... to the median board's
    ingest_p99_normal_ms: float | None
    ingest_p99_storm_ms: float | None
    till_failures: int
    boards_cpu_s: float  # the boards' fleet's own CPU time


async def run_storm(*, ws_url: str, origin: str, cookie: str, ingest_base: str, token: str, boards: int,
                    rate: float, kill: Callable[[], Awaitable[None]], restart: Callable[[], Awaitable[None]],
                    before_s: float = 2.0, after_s: float = 2.0, settle_timeout_s: float = 60.0,
                    seed: int = 7) -> StormResult:  # fmt: skip
    """Connect ``boards`` boards, run the till for ``before_s``, ``kill`` the socket process,
    ``restart`` it, keep the till going ``after_s`` more, then wait for every board to have
    every order and count what went wrong."""
    fleet = await asyncio.create_subprocess_exec(
        "node", str(BOARDS), ws_url, str(boards), cookie, origin, str(seed),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=2**26,
    )  # fmt: skip
    assert fleet.stdin is not None and fleet.stdout is not None
    till = Till(ingest_base, token, rate)
    till_task: asyncio.Task[None] | None = None
    try:
        line = await asyncio.wait_for(fleet.stdout.readline(), timeout=60)
        if not line or not json.loads(line).get("connected"):
            raise RuntimeError("the boards could not connect")
        till_task = asyncio.create_task(till.run())
        await asyncio.sleep(before_s)
        storm_started, storm_started_wall = time.monotonic(), time.time()
        await kill()
        await restart()
        ready_at, ready_at_wall = time.monotonic(), time.time()
        await asyncio.sleep(after_s)
        till.stopping = True
        await till_task
        last = till.last_seq
        fleet.stdin.write(json.dumps({"last": last, "settle_s": settle_timeout_s}).encode() + b"\n")
        await fleet.stdin.drain()
        report = json.loads(await asyncio.wait_for(fleet.stdout.readline(), timeout=settle_timeout_s + 30))
    finally:
        till.stopping = True
        if till_task is not None:
            await asyncio.gather(till_task, return_exceptions=True)
        if fleet.returncode is None:
            fleet.kill()
        await fleet.wait()
    summaries = report["boards"]
    # each board's first hello after the kill, and whether it said the resume was complete
    again = [next(((t / 1000, resumed) for t, resumed in b["hellos"] if t / 1000 >= storm_started_wall), None)
             for b in summaries]  # fmt: skip
    resumed_at = [t for t, resumed in (h for h in again if h is not None) if resumed]
    storm_end_wall = max(resumed_at) if resumed_at else ready_at_wall
    storm_end = ready_at + (storm_end_wall - ready_at_wall)
    normal = [lat for sent, lat in till.latencies if sent < storm_started]
    storm = [lat for sent, lat in till.latencies if storm_started <= sent <= storm_end]
    return StormResult(
        boards=boards, orders=len(till.latencies), lost=sum(b["lost"] for b in summaries),
        duplicated=sum(b["duplicated"] for b in summaries), out_of_order=sum(b["out_of_order"] for b in summaries),
        resets=sum(b["resets"] for b in summaries), not_resumed=boards - len(resumed_at),
        resumed_within_s=storm_end_wall - ready_at_wall,
        resumed_median_s=(statistics.median(resumed_at) - ready_at_wall) if resumed_at else 0.0,
        ingest_p99_normal_ms=p99_ms(normal),
        ingest_p99_storm_ms=p99_ms(storm), till_failures=till.failures, boards_cpu_s=report["cpu_s"],
    )  # fmt: skip
