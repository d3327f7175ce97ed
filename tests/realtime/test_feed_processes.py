"""The feed across real server processes (uvicorn), real Postgres and real Redis."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
from pathlib import Path

import httpx
import pytest
import websockets
from channels.db import database_sync_to_async
from django.conf import settings
from django.test import override_settings
from websockets.client import ClientProtocol
from websockets.frames import Close, Frame, Opcode
from websockets.uri import parse_uri

from opsite.settings.base import redis_channel_layers
from realtime.models import OrderEvent
from realtime.services import outbox_sweep
from tests.conftest import free_port

from .conftest import event

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.processes,
    pytest.mark.usefixtures("needs_redis", "needs_postgres"),
]


def ws_url(server_url: str, slug: str, query: str = "") -> str:
    return server_url.replace("http://", "ws://") + f"/ws/restaurants/{slug}/orders/{query}"


async def connect(server_url: str, slug: str, cookie: str, query: str = "", **kwargs):
    return await websockets.connect(
        ws_url(server_url, slug, query), additional_headers={"Cookie": cookie}, origin=server_url, **kwargs
    )


async def frame(ws, timeout: float = 5) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def post_events(server_url: str, token: str, body) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.post(
            f"{server_url}/api/v1/orders/events", json=body, headers={"Authorization": f"Bearer {token}"}
        )


async def test_an_event_ingested_on_one_server_reaches_a_socket_on_another(make_staff, start_server):
    staff = await database_sync_to_async(make_staff)()
    web_a, web_b = start_server(), start_server()
    ws = await connect(web_b.url, staff.restaurant.slug, staff.cookie)
    assert (await frame(ws))["type"] == "hello"
    response = await post_events(web_a.url, staff.token, [event("cross-1"), event("cross-2")])
    assert response.status_code == 201
    received = [await frame(ws), await frame(ws)]
    assert [(f["seq"], f["order_id"]) for f in received] == [(1, "cross-1"), (2, "cross-2")]
    await ws.close()


def open_unread_socket(server_url: str, slug: str, cookie: str) -> tuple[socket.socket, ClientProtocol]:
    """A client that completes the handshake and then stops reading, with a small receive buffer."""
    protocol = ClientProtocol(parse_uri(ws_url(server_url, slug)), max_size=None)
    request = protocol.connect()
    request.headers["Cookie"] = cookie
    request.headers["Origin"] = server_url
    protocol.send_request(request)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
    sock.connect(("127.0.0.1", int(server_url.rsplit(":", 1)[1])))
    sock.sendall(b"".join(protocol.data_to_send()))
    return sock, protocol


def read_until_close(sock: socket.socket, protocol: ClientProtocol, timeout: float = 20) -> tuple[int, int]:
    """Read everything now; return how many text frames came and the close code."""
    sock.settimeout(timeout)
    texts = 0
    while True:
        data = sock.recv(1 << 16)
        if not data:
            raise AssertionError(f"connection ended without a close frame after {texts} frames")
        protocol.receive_data(data)
        for item in protocol.events_received():
            if isinstance(item, Frame) and item.opcode == Opcode.TEXT:
                texts += 1
            elif isinstance(item, Frame) and item.opcode == Opcode.CLOSE:
                return texts, Close.parse(item.data).code


async def test_a_slow_consumer_is_closed_4008(make_staff, start_server):
    staff = await database_sync_to_async(make_staff)()
    server = start_server({"OPSITE_FEED_OUTBOUND_MAX": "4"})
    sock, protocol = await asyncio.to_thread(open_unread_socket, server.url, staff.restaurant.slug, staff.cookie)
    blob = "x" * 15_000
    for n in range(20):
        batch = [event(f"s{n}-{i}", data={"blob": blob}) for i in range(60)]
        assert (await post_events(server.url, staff.token, batch)).status_code == 201
    texts, code = await asyncio.to_thread(read_until_close, sock, protocol)
    sock.close()
    assert code == 4008
    assert texts < 20 * 60, "the server should have given up before sending everything"


@pytest.fixture
def private_redis(tmp_path: Path):
    """A Redis of this test's own, which it can stop and start again."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    port = free_port()

    def start() -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        for _ in range(50):
            try:
                if (
                    subprocess.run(
                        ["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True
                    ).stdout.strip()
                    == "PONG"
                ):
                    return process
            except FileNotFoundError:
                return process
            import time

            time.sleep(0.1)
        return process

    state = {"process": start()}

    def stop() -> None:
        state["process"].terminate()
        state["process"].wait()

    def restart() -> None:
        state["process"] = start()

    yield f"redis://127.0.0.1:{port}/0", stop, restart
    stop()


async def test_events_ingested_while_the_layer_is_down_arrive_when_it_returns(make_staff, start_server, private_redis):
    url, stop_redis, start_redis = private_redis
    staff = await database_sync_to_async(make_staff)()
    server = start_server({"REDIS_URL": url})
    ws = await connect(server.url, staff.restaurant.slug, staff.cookie)
    await frame(ws)
    assert (await post_events(server.url, staff.token, event("before"))).status_code == 201
    assert (await frame(ws))["order_id"] == "before"
    unmarked = OrderEvent.objects.filter(published_at__isnull=True)
    deadline = asyncio.get_running_loop().time() + 10
    while await database_sync_to_async(unmarked.exists)() and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)  # the server's marking pass comes within a second

    await asyncio.to_thread(stop_redis)
    response = await post_events(server.url, staff.token, [event("during-1"), event("during-2")])
    assert response.status_code == 201, "ingest must keep working while Redis is down"
    unpublished = await database_sync_to_async(OrderEvent.objects.filter(published_at__isnull=True).count)()
    assert unpublished == 2

    await asyncio.to_thread(start_redis)
    received = [await frame(ws, timeout=15), await frame(ws, timeout=15)]
    assert [f["order_id"] for f in received] == ["during-1", "during-2"]

    layers = redis_channel_layers([url], settings.REDIS_PREFIX)

    def sweep() -> int:
        with override_settings(CHANNEL_LAYERS=layers, OPSITE_OUTBOX_GRACE_S=0):
            return outbox_sweep()

    assert await database_sync_to_async(sweep)() == 2
    assert await database_sync_to_async(OrderEvent.objects.filter(published_at__isnull=True).count)() == 0
    # The sweeper's re-send is de-duplicated by seq: the socket sees nothing twice.
    assert (await post_events(server.url, staff.token, event("after"))).status_code == 201
    assert (await frame(ws))["order_id"] == "after"
    await ws.close()


async def test_the_layer_sharded_over_two_redis_servers(make_staff, start_server, private_redis):
    """CHANNEL_REDIS_URLS spreads the restaurants' groups over several Redis servers; every event
    still reaches every socket, whichever server its restaurant's group lives on."""
    import redis

    shard, _stop, _start = private_redis
    shards = {"CHANNEL_REDIS_URLS": f"{settings.REDIS_URL},{shard}"}
    staffs = [await database_sync_to_async(make_staff)(slug=f"shard-{n}") for n in range(12)]
    web_a, web_b = start_server(shards), start_server(shards)
    sockets = [await connect(web_b.url, s.restaurant.slug, s.cookie) for s in staffs]
    for ws in sockets:
        assert (await frame(ws))["type"] == "hello"
    for s in staffs:
        assert (await post_events(web_a.url, s.token, event(f"{s.restaurant.slug}-1"))).status_code == 201
    for ws, s in zip(sockets, staffs, strict=True):
        assert (await frame(ws))["order_id"] == f"{s.restaurant.slug}-1"
    pattern = f"{settings.REDIS_PREFIX}*group*"
    on_shard = len(redis.Redis.from_url(shard).keys(pattern))
    on_main = len(redis.Redis.from_url(settings.REDIS_URL).keys(pattern))
    for ws in sockets:
        await ws.close()
    assert on_shard and on_main, f"groups on the main server: {on_main}, on the second: {on_shard}"


async def test_server_shutdown_closes_sockets_1012(make_staff, start_server):
    staff = await database_sync_to_async(make_staff)()
    server = start_server()
    ws = await connect(server.url, staff.restaurant.slug, staff.cookie)
    await frame(ws)
    server.process.terminate()
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await asyncio.wait_for(ws.recv(), 10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012


async def test_presence_counts_sockets_per_node_and_forgets_a_dead_node(make_staff, start_server):
    from realtime.presence import get_presence, presence_summary

    # Only these restaurants' sockets are counted: a node another test killed is still in the
    # tables until its entry expires.
    def ours() -> tuple[dict[str, int], list[int]]:
        slugs = (a.restaurant.slug, b.restaurant.slug)
        by_restaurant = {s: n for s, n in presence_summary()["by_restaurant"].items() if s in slugs}
        per_node = [sum(c.get(f"r:{s}", 0) for s in slugs) for c in get_presence().tables().values()]
        return by_restaurant, sorted(n for n in per_node if n)

    a = await database_sync_to_async(make_staff)(slug="presence-a")
    b = await database_sync_to_async(make_staff)(slug="presence-b")
    fast = {"OPSITE_PRESENCE_TTL_S": "2"}
    web_1, web_2 = start_server(fast), start_server(fast)
    sockets = [
        await connect(web_1.url, a.restaurant.slug, a.cookie),
        await connect(web_1.url, b.restaurant.slug, b.cookie),
        await connect(web_2.url, a.restaurant.slug, a.cookie),
    ]
    for ws in sockets:
        await frame(ws)
    await asyncio.sleep(1)
    assert await asyncio.to_thread(ours) == ({a.restaurant.slug: 2, b.restaurant.slug: 1}, [1, 2])

    web_1.process.kill()  # no goodbye: its entry must expire on its own
    await asyncio.sleep(3)
    assert await asyncio.to_thread(ours) == ({a.restaurant.slug: 1}, [1])
    await sockets[2].close()


async def test_the_per_user_cap_is_exact_across_processes(make_staff, start_server):
    """Twelve sockets of one user connecting at once to two processes, with a cap of ten: ten
    are accepted and two refused with 4429, wherever they landed; one closing frees its place
    for a socket on the other process."""
    staff = await database_sync_to_async(make_staff)()
    env = {"OPSITE_FEED_MAX_SOCKETS_PER_USER": "10"}
    web_a, web_b = start_server(extra_env=env), start_server(extra_env=env)

    async def attempt(n: int):
        ws = await connect((web_a, web_b)[n % 2].url, staff.restaurant.slug, staff.cookie)
        try:
            first = await frame(ws)
            return ws if first["type"] == "hello" else None
        except websockets.ConnectionClosed as closed:
            assert closed.rcvd is not None and closed.rcvd.code == 4429, closed
            return None

    outcomes = await asyncio.gather(*(attempt(n) for n in range(12)))
    accepted = [ws for ws in outcomes if ws is not None]
    assert len(accepted) == 10
    refused_again = await attempt(0)
    assert refused_again is None
    await accepted[0].close()
    await asyncio.sleep(0.3)
    replacement = None
    for _ in range(20):  # the close reaches its process, which gives the place back
        replacement = await attempt(1)
        if replacement is not None:
            break
        await asyncio.sleep(0.2)
    assert replacement is not None, "a closed socket's place is given back across processes"
    for ws in [*accepted[1:], replacement]:
        await ws.close()
