"""The staff feed under hostile or broken input: every failure is a close code, a failed socket
always leaves the hub (so its user is not locked out by the cap), a password change closes it,
and sockets open only from this site's own origin."""

from __future__ import annotations

import asyncio
from unittest import mock

import pytest
from channels.db import database_sync_to_async

from realtime.hub import get_hub

from .conftest import close_code, close_code_answering_pings, event, ingest, next_frame, open_feed, staff_feed

pytestmark = pytest.mark.django_db(transaction=True)
DEEP = "[" * 100_000 + "]" * 100_000  # deeper than Python's parser recurses


async def _sockets_of(user_id: int) -> int:
    return await get_hub().user_sockets(user_id)


@pytest.mark.parametrize("query", ["?last_seq=²", "?last_seq=" + "9" * 5000, "?last_seq=-3&epoch=%00"])
async def test_a_bad_position_is_treated_as_none(query, make_staff):
    staff = await database_sync_to_async(make_staff)()
    feed = await open_feed(staff.cookie, staff.restaurant.slug, query)
    assert (await next_frame(feed))["type"] == "hello"
    await feed.disconnect()


async def test_a_deeply_nested_frame_is_an_error_frame_not_a_crash(make_staff, settings):
    settings.OPSITE_FEED_MAX_FRAME_BYTES = 1_000_000
    _staff, feed, _hello = await staff_feed(make_staff)
    await feed.send_to(text_data=DEEP)
    assert (await next_frame(feed))["code"] == "bad_json"
    await feed.send_to(text_data='{"type":"ping"}')
    assert (await next_frame(feed))["type"] == "pong"
    await feed.disconnect()


async def test_a_failing_replay_closes_1011_and_frees_the_users_place(make_staff, settings):
    settings.OPSITE_FEED_MAX_SOCKETS_PER_USER = 1
    staff = await database_sync_to_async(make_staff)()
    await ingest(staff.restaurant, event("missed"))  # something to replay
    with mock.patch("realtime.resume_reads.feed_frames_after", autospec=True, side_effect=RuntimeError("db gone")):
        feed = await open_feed(staff.cookie, staff.restaurant.slug, "?last_seq=0")
        assert (await next_frame(feed))["type"] == "hello"
        assert await close_code(feed) == 1011
    await asyncio.sleep(0.1)
    assert await _sockets_of(staff.user.pk) == 0
    again = await open_feed(staff.cookie, staff.restaurant.slug)  # not locked out with 4429
    assert (await next_frame(again))["type"] == "hello"
    await again.disconnect()


async def test_a_password_change_closes_the_feed(make_staff, settings):
    settings.OPSITE_FEED_HEARTBEAT_S = 0.1
    settings.OPSITE_FEED_CLIENT_TIMEOUT_S = 0.1
    settings.OPSITE_FEED_ACCESS_RECHECK_S = 0
    staff, feed, _hello = await staff_feed(make_staff)

    def change_password() -> None:
        staff.user.set_password("a-new-password-1")
        staff.user.save()

    await database_sync_to_async(change_password)()
    assert await close_code_answering_pings(feed) == 4403


async def _handshake(origin: str, host: str, cookie: str, slug: str) -> bool:
    from channels.testing import WebsocketCommunicator

    from opsite.asgi import application

    headers = [(b"origin", origin.encode()), (b"host", host.encode()), (b"cookie", cookie.encode())]
    communicator = WebsocketCommunicator(application, f"/ws/restaurants/{slug}/orders/", headers=headers)
    connected, _ = await communicator.connect()
    await communicator.disconnect()
    return bool(connected)


@pytest.mark.parametrize(
    ("origin", "host", "secure", "allowed"),
    [
        ("http://localhost", "localhost", False, True),
        ("http://localhost:80", "localhost", False, True),
        ("http://localhost:8080", "localhost", False, False),  # another port of the same host
        ("http://localhost", "localhost:8000", False, False),
        ("http://evil.example", "localhost", False, False),
        ("null", "localhost", False, False),
        ("http://localhost", "localhost", True, False),  # plain HTTP in front of an HTTPS site
        ("https://localhost", "localhost", True, True),
        ("https://board.example.com", "localhost", True, True),  # listed in CSRF_TRUSTED_ORIGINS
    ],
)
async def test_sockets_open_only_from_this_sites_own_origin(origin, host, secure, allowed, make_staff, settings):
    settings.SECURE_SSL_REDIRECT = secure
    settings.CSRF_TRUSTED_ORIGINS = ["https://board.example.com"]
    staff = await database_sync_to_async(make_staff)()
    assert await _handshake(origin, host, staff.cookie, staff.restaurant.slug) is allowed


async def test_the_host_itself_must_be_allowed(make_staff, settings):
    settings.ALLOWED_HOSTS = ["ops.example.com"]
    staff = await database_sync_to_async(make_staff)()
    assert await _handshake("http://evil.example", "evil.example", staff.cookie, staff.restaurant.slug) is False
    assert await _handshake("http://ops.example.com", "ops.example.com", staff.cookie, staff.restaurant.slug) is True


async def test_the_hub_stops_when_its_layers_clean_up_raises_in_place_of_the_cancellation(make_staff, monkeypatch):
    """The Redis layer's receive can raise an error of its own while cleaning up after a
    cancellation; the hub's receive loop must still end when its last socket leaves."""
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    real_receive = layer.receive

    async def receive_raising_on_cancel(channel: str):
        try:
            return await real_receive(channel)
        except asyncio.CancelledError:
            raise AssertionError("receive lock still held") from None

    monkeypatch.setattr(layer, "receive", receive_raising_on_cancel)
    _staff, feed, _hello = await staff_feed(make_staff)
    hub = get_hub()
    tasks = list(hub._tasks)
    assert tasks, "the hub started its loops"
    await feed.disconnect()
    async with asyncio.timeout(5):
        while not all(task.done() for task in tasks):
            await asyncio.sleep(0.05)
    assert all(task.cancelled() for task in tasks)


async def test_a_receive_on_the_layer_ends_when_cancelled_at_any_moment(needs_redis):
    """A cancellation that lands as a command is being sent must not be lost (Python 3.11's
    wait_for drops it, and the receive then waits for ever): 200 receives cancelled at random
    moments in their first milliseconds all end."""
    import random

    from channels.layers import channel_layers, get_channel_layer

    stuck = []
    for attempt in range(200):
        channel_layers.backends.clear()  # a new layer and connection each time: the send path is hit
        layer = get_channel_layer()
        channel = await layer.new_channel()
        receiving = asyncio.create_task(layer.receive(channel))
        await asyncio.sleep(random.uniform(0, 0.005))
        receiving.cancel()
        _done, pending = await asyncio.wait([receiving], timeout=3)
        if pending:
            stuck.append(attempt)
            break
    assert not stuck, f"receive {stuck} ignored its cancellation"


async def test_a_presence_call_cancelled_while_running_ends_cancelled(needs_redis):
    """The presence store's client has the same cancellable connection as the layer: a call
    cancelled while it runs ends cancelled, never with a result as if nothing had happened."""
    import random

    from django.conf import settings as django_settings

    from realtime.presence import RedisPresence

    presence = RedisPresence(django_settings.REDIS_URL)
    swallowed = 0
    for _ in range(200):
        presence._clients.clear()  # a new connection each time: the send path is hit
        call = asyncio.create_task(presence.user_places(1))
        await asyncio.sleep(random.uniform(0, 0.004))
        if call.cancel():
            await asyncio.wait([call], timeout=3)
            swallowed += not call.cancelled()
    assert swallowed == 0, f"{swallowed} cancellations were lost"


async def test_a_thousand_places_taken_and_given_back_at_once_all_count(needs_redis):
    """A reconnect storm: a thousand sockets claim their places at once, then close at once.
    Every claim and release reaches Redis (none refused for want of a connection), so the
    user's count is exact afterwards and no place is left behind."""
    from django.conf import settings as django_settings

    from realtime.presence import PRESENCE_CONNECTIONS, RedisPresence

    presence = RedisPresence(django_settings.REDIS_URL)
    user_id, node, sockets = 990_001, "storm-node", 1000
    claims = await asyncio.wait_for(
        asyncio.gather(*(presence.claim(node, user_id, sockets, 60) for _ in range(sockets))), timeout=30
    )
    assert all(claims) and await presence.user_places(user_id) == sockets
    assert sockets > 3 * PRESENCE_CONNECTIONS  # far more at once than the pool holds
    await asyncio.wait_for(asyncio.gather(*(presence.release(node, user_id) for _ in range(sockets))), timeout=30)
    assert await presence.user_places(user_id) == 0


async def test_handshake_reads_run_side_by_side_and_give_their_connections_back(needs_postgres):
    """Sockets opening at once read their access on threads of their own, each on its own
    pooled connection, instead of one by one on the single thread for sync code; every
    connection goes back to the pool when its read is done."""
    import threading

    from django.db import connection

    from common.aio import HANDSHAKE_THREADS, handshake_read

    together = threading.Barrier(HANDSHAKE_THREADS, timeout=5)  # passes only if all run at once

    @handshake_read
    def read() -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            pid = int(cursor.fetchone()[0])
        together.wait()
        return pid

    def in_use() -> int:
        assert connection.pool is not None, "the handshake reads are tested on the pooled connections"
        stats = connection.pool.get_stats()
        return int(stats.get("pool_size", 0) - stats.get("pool_available", 0))

    before = await database_sync_to_async(in_use)()
    pids = await asyncio.wait_for(asyncio.gather(*(read() for _ in range(HANDSHAKE_THREADS))), timeout=15)
    assert len(set(pids)) == HANDSHAKE_THREADS, "each read on a connection of its own"
    assert await database_sync_to_async(in_use)() <= before


async def test_client_frames_are_handled_without_a_trip_to_the_sync_thread(make_staff):
    """A board's pongs and acks (five a second per board at 50 orders/s) must not each wait for
    the process's one thread for sync code, as Channels' connection sweep before every message
    would have them do."""
    _staff, feed, _hello = await staff_feed(make_staff)
    sweeps = []

    async def sweep() -> None:
        sweeps.append(1)

    with mock.patch("channels.consumer.aclose_old_connections", sweep):
        for seq in range(20):
            await feed.send_to(text_data='{"type":"pong"}' if seq % 2 else f'{{"type":"ack","seq":{seq}}}')
        await feed.send_to(text_data='{"type":"ping"}')
        assert (await next_frame(feed))["type"] == "pong"  # every frame before it was handled
    assert sweeps == []
    await feed.disconnect()
