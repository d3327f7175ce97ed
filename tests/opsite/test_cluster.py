"""The whole layout at once: two web processes behind a balancer, two Celery workers and one beat,
on two (named) machines, over the real Postgres and Redis.

machine-a runs web A, worker 1 and beat; machine-b runs web B and worker 2. The scenario:
an order ingested on A reaches a socket on B; /health/stats and /metrics count both web
processes; the workers and beat are seen and do their jobs; the snapshot has each machine's
figures; then web A is killed outright while boards are connected through the balancer and
orders keep coming, and every board ends up with every order, in order, once.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from channels.db import database_sync_to_async
from django.test import override_settings

from common.scheduling import sync_periodic_tasks
from monitoring.history.snapshots import CLUSTER, snapshot_collect
from monitoring.models import MetricSnapshot, NodeReport
from tests.balancer import Balancer

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.processes,
    pytest.mark.usefixtures("needs_redis", "needs_postgres"),
]
TOKEN = "ops-cluster-token"
OPS = {"Authorization": f"Bearer {TOKEN}"}
BOARDS = 6
ORDERS = 80  # at about 20 a second, web A is killed after the first 20


def node_env(machine: str, shared: Path) -> dict[str, str]:
    return {
        "OPSITE_NODE_NAME": machine,
        "OPSITE_NODE_REPORT_S": "1",
        "OPSITE_METRICS_FLUSH_S": "0.2",
        "OPS_API_TOKENS": TOKEN,
        "PROMETHEUS_MULTIPROC_DIR": str(shared / machine),
    }


async def eventually(check: Callable[[], Any], timeout: float = 40, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f} s: {what}")
        await asyncio.sleep(0.5)


def ws_url(base: str, slug: str, query: str = "") -> str:
    return base.replace("http://", "ws://") + f"/ws/restaurants/{slug}/orders/{query}"


def metric_value(text: str, name: str, labels: str = "") -> float | None:
    prefix = f"{name}{{{labels}}}" if labels else name
    for line in text.splitlines():
        if line.startswith(prefix + " "):
            return float(line.split()[-1])
    return None


async def live_count(http: httpx.AsyncClient, url: str) -> int:
    body = (await http.get(f"{url}/health/stats", headers=OPS)).json()
    route = body["requests"]["5m"]["routes"].get("GET /health/live")
    return int(route["requests"]) if route else 0


class Board:
    """A staff board: follows the feed, answers pings, reconnects with its position and resumes."""

    def __init__(self, base: str, slug: str, cookie: str) -> None:
        self.base, self.slug, self.cookie = base, slug, cookie
        self.last_seq: int | None = None
        self.epoch = ""
        self.seqs: list[int] = []
        self.connections = 0
        self.resets = 0

    async def run(self) -> None:
        while True:
            query = f"?last_seq={self.last_seq}&epoch={self.epoch}" if self.last_seq is not None else ""
            try:
                async with websockets.connect(ws_url(self.base, self.slug, query), origin=self.base,
                                              additional_headers={"Cookie": self.cookie}) as ws:  # fmt: skip
                    self.connections += 1
                    async for raw in ws:
                        frame = json.loads(raw)
                        self.handle(frame)
                        if frame.get("type") == "ping":
                            await ws.send('{"type":"pong"}')
            except (websockets.WebSocketException, OSError):
                pass  # dropped, or a handshake cut short by the dying server: reconnect
            await asyncio.sleep(0.2)

    def handle(self, frame: dict[str, Any]) -> None:
        kind = frame.get("type", "")
        if kind == "hello" and self.last_seq is None:
            self.last_seq, self.epoch = frame["seq"], frame["epoch"]
        elif kind == "reset":
            self.resets += 1
        elif kind.startswith("order."):
            self.seqs.append(frame["seq"])
            self.last_seq = frame["seq"]


async def ingest(client: httpx.AsyncClient, token: str, order_id: str) -> int:
    """As a till does: retry a failed send with the same idempotency key until it is answered."""
    body = {"type": "order.created", "order_id": order_id, "idempotency_key": order_id, "total_amount": "4.50",
            "items_count": 1}  # fmt: skip
    for _ in range(20):
        try:
            response = await client.post(
                "/api/v1/orders/events", json=body, headers={"Authorization": f"Bearer {token}"}
            )
        except httpx.TransportError:
            await asyncio.sleep(0.1)
            continue
        if response.status_code in (200, 201):
            return int(response.json()["seq"])
        raise AssertionError(f"ingest answered {response.status_code}: {response.text}")
    raise AssertionError(f"{order_id} was never accepted")


async def test_two_webs_two_workers_one_beat(make_staff, start_server, start_celery, tmp_path):
    await database_sync_to_async(sync_periodic_tasks)()
    staff = await database_sync_to_async(make_staff)(slug="cluster-feed")
    slug = staff.restaurant.slug
    for machine in ("machine-a", "machine-b"):
        (tmp_path / machine).mkdir()
    machine_a, machine_b = node_env("machine-a", tmp_path), node_env("machine-b", tmp_path)
    web_a, web_b = start_server(machine_a), start_server(machine_b)
    start_celery("worker", "-c", "1", "-n", "w1@machine-a", "--without-mingle", "--without-gossip", extra_env=machine_a)
    start_celery("worker", "-c", "1", "-n", "w2@machine-b", "--without-mingle", "--without-gossip", extra_env=machine_b)
    start_celery("beat", "-s", str(tmp_path / "beat-schedule"), extra_env=machine_a)
    balancer = Balancer([int(web_a.url.rsplit(":", 1)[1]), int(web_b.url.rsplit(":", 1)[1])]).start()
    try:
        async with httpx.AsyncClient(timeout=15) as http:
            # An order ingested on A reaches a socket on B.
            async with websockets.connect(ws_url(web_b.url, slug), origin=web_b.url,
                                          additional_headers={"Cookie": staff.cookie}) as on_b:  # fmt: skip
                assert json.loads(await on_b.recv())["type"] == "hello"
                async with httpx.AsyncClient(base_url=web_a.url, timeout=15) as till:
                    seq = await ingest(till, staff.token, "cross-machine")
                frame = json.loads(await asyncio.wait_for(on_b.recv(), 5))
                assert (frame["type"], frame["order_id"], frame["seq"]) == ("order.created", "cross-machine", seq)

                # /health/stats and /metrics on either process count the other's requests and sockets.
                # The window is five minutes: earlier tests' requests to the route leave it at
                # minute boundaries, so a reading spoiled by one is taken again (once at most).
                for attempt in range(3):
                    minute = int(time.time() // 60)
                    before_count = await live_count(http, web_a.url)
                    for url, n in ((web_a.url, 5), (web_b.url, 7)):
                        for _ in range(n):
                            assert (await http.get(f"{url}/health/live")).status_code == 200

                    async def stats_count() -> bool:
                        return await live_count(http, web_a.url) - before_count == 12  # noqa: B023

                    try:
                        await eventually(stats_count, 10, "web A's /health/stats counts B's requests too")
                        break
                    except AssertionError:
                        if attempt == 2 or int(time.time() // 60) == minute:
                            raise  # no minute boundary passed: the count is really wrong
                async with websockets.connect(ws_url(web_a.url, slug), origin=web_a.url,
                                              additional_headers={"Cookie": staff.cookie}) as on_a:  # fmt: skip
                    assert json.loads(await on_a.recv())["type"] == "hello"

                    async def metrics_count() -> bool:
                        text = (await http.get(f"{web_b.url}/metrics", headers=OPS)).text
                        # B's rate is a count over the 5-minute window so far (four whole minutes
                        # and this one); times that window it is every process's count, as A
                        # reads it (other tests' requests to the route included, on both sides)
                        seconds = 240 + time.time() % 60
                        rate = metric_value(text, "opsite_http_request_rate", 'route="GET /health/live",window="5m"')
                        counted = await live_count(http, web_a.url)
                        return ((metric_value(text, "opsite_socket_nodes") or 0) >= 2
                                and metric_value(text, "opsite_sockets", f'restaurant="{slug}"') == 2
                                and counted >= 12 and abs((rate or 0.0) * seconds - counted) < 0.5)  # fmt: skip

                    await eventually(metrics_count, 20, "web B's /metrics counts A's socket and requests")

            # Both workers and beat are up, and beat's jobs run on the workers.
            async def cluster_seen() -> bool:
                report = (await http.get(f"{web_a.url}/health/detailed", headers=OPS)).json()
                celery, beat = report["components"]["celery"], report["components"].get("beat", {})
                return celery["status"] == "ok" and celery["workers"] == 2 and beat.get("status") == "ok"

            await eventually(cluster_seen, 60, "two workers and a fresh beat heartbeat in /health/detailed")

            # Every process reports; the snapshot has each machine's figures and the installation's.
            def roles() -> dict[str, list[str]]:
                by_host: dict[str, list[str]] = {}
                for node in NodeReport.objects.all():
                    by_host.setdefault(node.host, []).append(node.role)
                return {host: sorted(r) for host, r in by_host.items()}

            async def all_reported() -> bool:
                return await database_sync_to_async(roles)() == {
                    "machine-a": ["beat", "web", "worker"], "machine-b": ["web", "worker"]}  # fmt: skip

            await eventually(all_reported, 30, "a node report from each of the five processes")
            # The workers' ping stops waiting once both reported workers have answered.
            celery = (await http.get(f"{web_a.url}/health/detailed", headers=OPS)).json()["components"]["celery"]
            assert celery["workers"] == 2 and celery["ms"] < 800, celery

            def take_snapshot() -> dict[str, MetricSnapshot]:
                with override_settings(OPSITE_SNAPSHOT_LAG_S=0):
                    result = snapshot_collect()
                return {row.host: row for row in MetricSnapshot.objects.filter(taken_at=result.taken_at)}

            rows = await database_sync_to_async(take_snapshot)()
            assert set(rows) == {"machine-a", "machine-b", CLUSTER}
            assert (rows["machine-a"].nodes, rows["machine-b"].nodes, rows[CLUSTER].nodes) == (3, 2, 5)
            assert rows[CLUSTER].workers == 2
            for host in ("machine-a", "machine-b"):
                row = rows[host]
                assert row.memory_percent and row.memory_percent > 0, host
                assert row.disk_percent and row.disk_percent > 0, host
                assert row.process_rss_bytes and row.process_rss_bytes > 20 * 2**20, host
                assert row.cpu_percent is not None and row.load_1 is not None, host

            # Web A dies while boards are connected through the balancer and orders keep coming.
            boards = [Board(balancer.url, slug, staff.cookie) for _ in range(BOARDS)]
            tasks = [asyncio.create_task(board.run()) for board in boards]
            await eventually(lambda: _true(all(b.connections for b in boards)), 10, "every board connected")
            assert balancer.routed[int(web_a.url.rsplit(":", 1)[1])] >= BOARDS // 2  # some boards are on A
            start_seq = min(b.last_seq or 0 for b in boards)
            accepted: list[int] = []
            async with httpx.AsyncClient(base_url=balancer.url, timeout=15) as till:
                for n in range(ORDERS):
                    if n == ORDERS // 4:
                        web_a.process.kill()
                    accepted.append(await ingest(till, staff.token, f"failover-{n}"))
                    await asyncio.sleep(0.05)
            expected = list(range(start_seq + 1, max(accepted) + 1))
            assert sorted(accepted) == expected, "every order was accepted once"
            await eventually(lambda: _true(all(b.seqs == expected for b in boards)), 30,
                             "every board has every order, in order, once")  # fmt: skip
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            assert web_a.process.wait(timeout=5) != 0
            assert sum(b.connections for b in boards) >= BOARDS + BOARDS // 2, "the boards on A reconnected"
            assert all(b.resets == 0 for b in boards)
    finally:
        balancer.stop()


async def _true(value: bool) -> bool:
    return value
