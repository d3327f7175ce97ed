from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from opsite.asgi import application
from realtime.models import StaffMembership
from realtime.services import membership_remove

from .conftest import close_code, close_code_answering_pings, event, ingest, next_frame, open_feed, staff_feed

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("needs_redis")]


async def test_it_rejects_anonymous_socket(make_staff):
    staff = await database_sync_to_async(make_staff)()
    feed = await open_feed("", staff.restaurant.slug)
    assert await close_code(feed) == 4401


async def test_a_session_from_before_a_password_change_cannot_open_a_feed(make_staff):
    staff = await database_sync_to_async(make_staff)()

    def change_password() -> None:
        staff.user.set_password("a-new-password-2")
        staff.user.save()

    await database_sync_to_async(change_password)()
    feed = await open_feed(staff.cookie, staff.restaurant.slug)
    assert await close_code(feed) == 4401


async def test_the_handshake_reads_the_session_and_user_without_wrapping_the_sockets_send(make_staff):
    """Frames go straight to the server: nothing between the consumer and the server's send
    looks at the session per frame (channels' session middleware would). The user is read from
    the session once, inside the consumer's own database call."""
    from common.socket_auth import SessionAuthMiddleware, socket_user

    seen: dict[str, object] = {}

    async def inner(scope, receive, send):
        seen.update(scope=scope, send=send)

    async def server_send(message):  # pragma: no cover - never called
        raise AssertionError(message)

    staff = await database_sync_to_async(make_staff)()
    scope = {"type": "websocket", "headers": [(b"cookie", staff.cookie.encode())]}
    await SessionAuthMiddleware(inner)(scope, None, server_send)
    assert seen["send"] is server_send and "user" not in seen["scope"]
    user = await database_sync_to_async(socket_user)(seen["scope"])
    assert user.pk == staff.user.pk and seen["scope"]["user"] is user
    assert seen["scope"]["session"].session_key == staff.cookie.split("=", 1)[1]
    await SessionAuthMiddleware(inner)({"type": "websocket", "headers": []}, None, server_send)
    assert not (await database_sync_to_async(socket_user)(seen["scope"])).is_authenticated


async def test_it_rejects_staff_of_another_restaurant(make_staff):
    mine = await database_sync_to_async(make_staff)()
    other = await database_sync_to_async(make_staff)()
    feed = await open_feed(mine.cookie, other.restaurant.slug)
    assert await close_code(feed) == 4403
    unknown = await open_feed(mine.cookie, "no-such-place")
    assert await close_code(unknown) == 4403


async def test_it_says_hello_then_streams_events_in_order(make_staff):
    staff, feed, hello = await staff_feed(make_staff)
    assert hello["type"] == "hello" and hello["seq"] == 0 and hello["restaurant"] == staff.restaurant.slug
    assert hello["heartbeat_s"] == 25 and hello["epoch"]
    for n in range(20):
        await ingest(staff.restaurant, event(f"o{n}"))
    frames = [await next_frame(feed) for _ in range(20)]
    assert [f["seq"] for f in frames] == list(range(1, 21))
    assert [f["order_id"] for f in frames] == [f"o{n}" for n in range(20)]
    assert frames[0]["type"] == "order.created" and frames[0]["restaurant"] == staff.restaurant.slug
    await feed.disconnect()


async def test_it_keeps_restaurants_apart(make_staff):
    a = await database_sync_to_async(make_staff)()
    b = await database_sync_to_async(make_staff)()
    feed_a = await open_feed(a.cookie, a.restaurant.slug)
    feed_b = await open_feed(b.cookie, b.restaurant.slug)
    await next_frame(feed_a), await next_frame(feed_b)
    await ingest(a.restaurant, event("only-a"))
    assert (await next_frame(feed_a))["order_id"] == "only-a"
    assert await feed_b.receive_nothing(timeout=0.5)
    await feed_a.disconnect()
    await feed_b.disconnect()


async def test_it_replays_missed_events_after_reconnect(make_staff):
    staff = await database_sync_to_async(make_staff)()
    for n in range(5):
        await ingest(staff.restaurant, event(f"o{n}"))
    feed = await open_feed(staff.cookie, staff.restaurant.slug, "?last_seq=2")
    hello = await next_frame(feed)
    assert hello["seq"] == 5
    replayed = [await next_frame(feed) for _ in range(3)]
    assert [f["seq"] for f in replayed] == [3, 4, 5]
    assert await feed.receive_nothing(timeout=0.3)
    await ingest(staff.restaurant, event("live"))
    assert (await next_frame(feed))["seq"] == 6
    await feed.disconnect()


async def test_it_sends_reset_beyond_the_window_or_epoch(make_staff, settings):
    settings.OPSITE_FEED_REPLAY_MAX = 3
    staff = await database_sync_to_async(make_staff)()
    await ingest(staff.restaurant, *[event(f"o{n}") for n in range(6)])
    feed = await open_feed(staff.cookie, staff.restaurant.slug, "?last_seq=1")
    hello = await next_frame(feed)
    assert (await next_frame(feed)) == {"type": "reset", "seq": 6, "epoch": hello["epoch"]}
    assert await feed.receive_nothing(timeout=0.3)
    await feed.disconnect()
    inside = await open_feed(staff.cookie, staff.restaurant.slug, "?last_seq=3")  # exactly the window behind
    await next_frame(inside)
    assert [(await next_frame(inside))["seq"] for _ in range(3)] == [4, 5, 6]
    await inside.disconnect()
    other_epoch = await open_feed(staff.cookie, staff.restaurant.slug, "?last_seq=5&epoch=older")
    await next_frame(other_epoch)
    assert (await next_frame(other_epoch))["type"] == "reset"
    await other_epoch.disconnect()


async def test_hello_says_whether_the_resume_is_complete_and_names_the_gap(make_staff, settings):
    settings.OPSITE_FEED_REPLAY_MAX = 3
    staff = await database_sync_to_async(make_staff)()
    await ingest(staff.restaurant, *[event(f"o{n}") for n in range(6)])
    cases = {
        "": {"resumed": False, "reason": "no_position"},
        "?last_seq=3": {"resumed": True},
        "?last_seq=6": {"resumed": True},
        "?last_seq=1": {"resumed": False, "reason": "too_far_behind", "gap": {"from": 2, "to": 6}},
        "?last_seq=9": {"resumed": False, "reason": "ahead_of_stream"},
        "?last_seq=5&epoch=older": {"resumed": False, "reason": "epoch_changed"},
    }
    for query, expected in cases.items():
        feed = await open_feed(staff.cookie, staff.restaurant.slug, query)
        hello = await next_frame(feed)
        said = {key: hello[key] for key in ("resumed", "reason", "gap") if key in hello}
        assert said == expected, query
        await feed.disconnect()


async def test_a_board_offline_for_hours_gets_every_missed_event_in_order_in_pages(make_staff, settings):
    settings.OPSITE_FEED_REPLAY_PAGE = 700  # pages that do not divide the stretch evenly
    staff = await database_sync_to_async(make_staff)()
    feed = await open_feed(staff.cookie, staff.restaurant.slug, "?last_seq=0")
    assert (await next_frame(feed))["resumed"] is True
    await feed.disconnect()  # the board goes away; the kitchen keeps working
    for batch in range(20):
        await ingest(staff.restaurant, *[event(f"b{batch}-{n}") for n in range(500)])
    back = await open_feed(staff.cookie, staff.restaurant.slug, "?last_seq=0")
    hello = await next_frame(back)
    assert hello["resumed"] is True and hello["seq"] == 10_000
    seqs = [(await next_frame(back, timeout=10))["seq"] for _ in range(10_000)]
    assert seqs == list(range(1, 10_001))
    await ingest(staff.restaurant, event("after"))
    assert (await next_frame(back))["seq"] == 10_001  # live again, exactly once
    assert await back.receive_nothing(timeout=0.3)
    await back.disconnect()


async def test_bad_frames_get_error_frames_and_the_socket_survives(make_staff):
    _staff, feed, _hello = await staff_feed(make_staff)
    await feed.send_to(text_data="{not json")
    assert (await next_frame(feed))["code"] == "bad_json"
    await feed.send_to(text_data='{"type":"subscribe"}')
    assert (await next_frame(feed))["code"] == "unknown_type"
    await feed.send_to(text_data='{"type":"ping","pad":"' + "x" * 70_000 + '"}')
    assert (await next_frame(feed))["code"] == "too_large"
    await feed.send_to(text_data='{"type":"ping"}')
    assert await next_frame(feed) == {"type": "pong"}
    await feed.disconnect()


async def test_the_frame_limit_counts_bytes_not_characters(make_staff, settings):
    settings.OPSITE_FEED_MAX_FRAME_BYTES = 100
    _staff, feed, _hello = await staff_feed(make_staff)
    wide = '{"type":"ping","pad":"' + "é" * 60 + '"}'  # 84 characters, 144 bytes
    await feed.send_to(text_data=wide)
    assert (await next_frame(feed))["code"] == "too_large"
    await feed.send_to(bytes_data=b'{"type":"ping","pad":"' + b"x" * 100 + b'"}')
    assert (await next_frame(feed))["code"] == "too_large"
    await feed.send_to(bytes_data=b'{"type":"ping"}')
    assert await next_frame(feed) == {"type": "pong"}
    exactly = '{"type":"ping","pad":"' + "x" * (100 - 24) + '"}'
    assert len(exactly.encode()) == 100
    await feed.send_to(text_data=exactly)  # at the limit: still allowed
    assert await next_frame(feed) == {"type": "pong"}
    await feed.disconnect()


async def test_repeated_abuse_closes_4400(make_staff, settings):
    settings.OPSITE_FEED_MAX_BAD_FRAMES = 3
    _staff, feed, _hello = await staff_feed(make_staff)
    for _ in range(3):  # up to the limit, each gets an error frame
        await feed.send_to(text_data="nope")
        assert (await next_frame(feed))["code"] == "bad_json"
    await feed.send_to(text_data="nope")  # one past it closes
    assert await close_code(feed) == 4400


async def test_heartbeat_pings_and_closes_a_silent_client(make_staff, settings):
    settings.OPSITE_FEED_HEARTBEAT_S = 0.2
    settings.OPSITE_FEED_CLIENT_TIMEOUT_S = 0.3
    _staff, feed, _hello = await staff_feed(make_staff)
    assert await next_frame(feed) == {"type": "ping"}
    await feed.send_to(text_data='{"type":"pong"}')
    assert await next_frame(feed) == {"type": "ping"}
    assert await close_code(feed) == 4408


async def test_revoked_membership_disconnects(make_staff):
    staff, feed, _hello = await staff_feed(make_staff)
    membership = await database_sync_to_async(StaffMembership.objects.get)(user=staff.user)
    await database_sync_to_async(membership_remove)(membership=membership)
    assert await close_code(feed, timeout=3) == 4403


async def test_logout_disconnects_that_session(make_staff):
    staff, feed, _hello = await staff_feed(make_staff)

    def logout() -> int:
        client = Client()
        client.cookies["sessionid"] = staff.cookie.split("=", 1)[1]
        return client.post("/accounts/logout/").status_code

    assert await database_sync_to_async(logout)() in (200, 302)
    assert await close_code(feed, timeout=3) == 4403


async def test_access_recheck_closes_a_socket_whose_session_ended(make_staff, settings):
    settings.OPSITE_FEED_HEARTBEAT_S = 0.1
    settings.OPSITE_FEED_CLIENT_TIMEOUT_S = 0.1
    settings.OPSITE_FEED_ACCESS_RECHECK_S = 0
    _staff, feed, _hello = await staff_feed(make_staff)
    from django.contrib.sessions.models import Session

    await database_sync_to_async(Session.objects.all().delete)()
    assert await close_code_answering_pings(feed) == 4403


async def test_access_is_rechecked_on_its_own_period_not_every_heartbeat(make_staff, settings):
    settings.OPSITE_FEED_HEARTBEAT_S = 0.1
    settings.OPSITE_FEED_CLIENT_TIMEOUT_S = 0.1
    settings.OPSITE_FEED_ACCESS_RECHECK_S = 1.5
    _staff, feed, _hello = await staff_feed(make_staff)
    from django.contrib.sessions.models import Session

    await database_sync_to_async(Session.objects.all().delete)()  # ended without a logout signal
    started = asyncio.get_running_loop().time()
    assert await close_code_answering_pings(feed) == 4403
    waited = asyncio.get_running_loop().time() - started
    assert waited >= 1.2, f"re-checked after {waited:.2f} s, before its period"


async def test_it_caps_sockets_per_user(make_staff, settings):
    settings.OPSITE_FEED_MAX_SOCKETS_PER_USER = 2
    staff = await database_sync_to_async(make_staff)()
    feeds = [await open_feed(staff.cookie, staff.restaurant.slug) for _ in range(2)]
    for feed in feeds:
        await next_frame(feed)
    third = await open_feed(staff.cookie, staff.restaurant.slug)
    assert await close_code(third) == 4429
    for feed in feeds:
        await feed.disconnect()
    await asyncio.sleep(0.1)
    again = await open_feed(staff.cookie, staff.restaurant.slug)
    assert (await next_frame(again))["type"] == "hello"
    await again.disconnect()


async def test_the_cap_holds_for_sockets_of_one_user_connecting_at_once(make_staff, settings):
    settings.OPSITE_FEED_MAX_SOCKETS_PER_USER = 2
    staff = await database_sync_to_async(make_staff)()
    feeds = [WebsocketCommunicator(application, f"/ws/restaurants/{staff.restaurant.slug}/orders/",
                                   headers=[(b"cookie", staff.cookie.encode()), (b"origin", b"http://localhost"),
                                            (b"host", b"localhost")])
             for _ in range(5)]  # fmt: skip
    await asyncio.gather(*(feed.connect() for feed in feeds))
    firsts = await asyncio.gather(*(feed.receive_output(timeout=5) for feed in feeds))
    hellos = [f for f in firsts if f["type"] == "websocket.send"]
    refused = [f for f in firsts if f["type"] == "websocket.close"]
    assert len(hellos) == 2 and len(refused) == 3 and {f["code"] for f in refused} == {4429}
    for feed in feeds:
        await feed.disconnect()


async def test_superuser_may_watch_any_restaurant(make_staff, django_user_model):
    staff = await database_sync_to_async(make_staff)()
    admin = await database_sync_to_async(django_user_model.objects.create_superuser)("root", "r@x.org", "pw")
    from tests.conftest import session_cookie_for

    cookie = await database_sync_to_async(session_cookie_for)(admin)
    feed = await open_feed(cookie, staff.restaurant.slug)
    assert (await next_frame(feed))["type"] == "hello"
    await feed.disconnect()


async def test_a_lost_broadcast_is_filled_from_the_database_in_order_and_once(make_staff):
    """One batch commits but its broadcast never arrives (the layer dropped it); the next one
    does: the socket fills the gap from the database before it, each event once, in order."""
    from unittest import mock

    staff = await database_sync_to_async(make_staff)()
    feed = await open_feed(staff.cookie, staff.restaurant.slug)
    await next_frame(feed)  # hello
    await ingest(staff.restaurant, event("first"))
    assert (await next_frame(feed))["seq"] == 1
    with mock.patch("realtime.services.ingest.events_publish", autospec=True):  # the broadcast is lost
        await ingest(staff.restaurant, event("lost-1"))
    await ingest(staff.restaurant, event("after-1"))
    with mock.patch("realtime.services.ingest.events_publish", autospec=True):
        await ingest(staff.restaurant, event("lost-2"), event("lost-3"))
    await ingest(staff.restaurant, event("after-2"))
    frames = [await next_frame(feed) for _ in range(5)]
    assert [(f["seq"], f["order_id"]) for f in frames] == [
        (2, "lost-1"), (3, "after-1"), (4, "lost-2"), (5, "lost-3"), (6, "after-2")
    ]  # fmt: skip
    assert await feed.receive_nothing(timeout=0.5), "an event was sent twice"
    await feed.disconnect()


async def test_a_lost_stretch_longer_than_the_replay_window_is_a_reset(make_staff, settings):
    from unittest import mock

    settings.OPSITE_FEED_REPLAY_MAX = 2
    staff, feed, hello = await staff_feed(make_staff)
    await ingest(staff.restaurant, event("first"))
    await next_frame(feed)
    with mock.patch("realtime.services.ingest.events_publish", autospec=True):
        await ingest(staff.restaurant, event("lost-2"), event("lost-3"))  # exactly the window: filled
    await ingest(staff.restaurant, event("fourth"))
    assert [(await next_frame(feed))["seq"] for _ in range(3)] == [2, 3, 4]
    with mock.patch("realtime.services.ingest.events_publish", autospec=True):
        await ingest(staff.restaurant, *[event(f"lost-{n}") for n in (5, 6, 7)])  # one more than the window
    await ingest(staff.restaurant, event("eighth"))
    assert await next_frame(feed) == {"type": "reset", "seq": 7, "epoch": hello["epoch"]}
    assert (await next_frame(feed))["seq"] == 8
    assert await feed.receive_nothing(timeout=0.3)
    await feed.disconnect()


async def test_a_closed_socket_leaves_no_task_behind(make_staff, settings):
    settings.OPSITE_FEED_HEARTBEAT_S = 0.05
    _staff, feed, _hello = await staff_feed(make_staff)
    await feed.disconnect()
    await asyncio.sleep(0.2)

    def feed_task(task: asyncio.Task) -> bool:
        return getattr(task.get_coro(), "__qualname__", "").startswith("StaffOrderFeedConsumer.")

    left = [task for task in asyncio.all_tasks() if feed_task(task) and not task.done()]
    assert left == [], "the pump or the heartbeat outlived its socket"


async def test_a_resent_batch_skips_what_the_socket_has_and_delivers_the_rest(make_staff):
    """The outbox sweep re-sends a batch the socket partly has (its broadcast went out, its
    published mark did not): the known event is skipped, the new one after it delivered."""
    from unittest import mock

    from realtime.models import OrderEvent
    from realtime.services import outbox_sweep
    from realtime.services.feed import published_marks

    staff, feed, _hello = await staff_feed(make_staff)
    await ingest(staff.restaurant, event("one"), event("two"))
    assert [(await next_frame(feed))["seq"] for _ in range(2)] == [1, 2]
    with mock.patch("realtime.services.ingest.events_publish", autospec=True):
        await ingest(staff.restaurant, event("three"))

    def resend() -> int:
        published_marks.flush()  # seqs 1 and 2 marked as the process's next pass would
        OrderEvent.objects.filter(seq=2).update(published_at=None)
        return outbox_sweep(older_than=timedelta(0))

    assert await database_sync_to_async(resend)() == 2  # one message: seqs 2 and 3
    frame = await next_frame(feed)
    assert (frame["seq"], frame["order_id"]) == (3, "three")
    assert await feed.receive_nothing(timeout=0.3)
    await feed.disconnect()
