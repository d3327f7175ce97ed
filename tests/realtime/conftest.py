from __future__ import annotations

import json
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from opsite.asgi import application
from realtime.models import Restaurant
from realtime.services import order_event_ingest
from realtime.services.feed import published_marks
from realtime.validation import clean_events


def event(order_id: str, kind: str = "order.created", **extra: Any) -> dict[str, Any]:
    return {"type": kind, "order_id": order_id, "total_amount": "10.00", "items_count": 1, **extra}


def ingest_sync(restaurant: Restaurant, *events: dict[str, Any]) -> list[dict[str, object]]:
    """Ingested, published, and marked published as the process's next marking pass marks them
    (at once here, so a test that unmarks events is not raced by that pass)."""
    cleaned, _ = clean_events(list(events), max_batch=500)
    answers = order_event_ingest(restaurant=restaurant, events=cleaned).answers
    published_marks.flush()
    return answers


ingest = database_sync_to_async(ingest_sync)


async def open_feed(cookie: str, slug: str, query: str = "") -> WebsocketCommunicator:
    headers = [(b"origin", b"http://localhost"), (b"host", b"localhost")]
    if cookie:
        headers.append((b"cookie", cookie.encode()))
    communicator = WebsocketCommunicator(application, f"/ws/restaurants/{slug}/orders/{query}", headers=headers)
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def next_frame(communicator: WebsocketCommunicator, timeout: float = 3) -> dict[str, Any]:
    return json.loads(await communicator.receive_from(timeout=timeout))


async def close_code(communicator: WebsocketCommunicator, timeout: float = 3) -> int:
    """Read frames until the server closes; return its close code."""
    while True:
        output = await communicator.receive_output(timeout=timeout)
        if output["type"] == "websocket.close":
            return int(output.get("code", 1000))


async def close_code_answering_pings(communicator: WebsocketCommunicator, timeout: float = 3) -> int:
    """Answer every frame with a pong, as a live board does, until the server closes; its code."""
    while True:
        output = await communicator.receive_output(timeout=timeout)
        if output["type"] == "websocket.close":
            return int(output.get("code", 1000))
        await communicator.send_to(text_data='{"type":"pong"}')


async def staff_feed(make_staff: Any, query: str = "") -> tuple[Any, WebsocketCommunicator, dict[str, Any]]:
    """A new staff member's feed socket, opened and past its hello: (staff, socket, hello)."""
    staff = await database_sync_to_async(make_staff)()
    feed = await open_feed(staff.cookie, staff.restaurant.slug, query)
    return staff, feed, await next_frame(feed)


@pytest.fixture(autouse=True)
async def _tasks_end_when_cancelled():
    """Every task a test leaves behind must end when cancelled, as they are when a socket
    process stops; one that ignores the cancellation fails here in seconds, with its stack,
    instead of hanging the event loop's close."""
    yield
    import asyncio
    import io

    current = asyncio.current_task()
    left = [task for task in asyncio.all_tasks() if task is not current and not task.done()]
    for task in left:
        task.cancel()
    if not left:
        return
    _done, pending = await asyncio.wait(left, timeout=5)
    if pending:
        stacks = io.StringIO()
        for task in pending:
            print(f"{task!r}", file=stacks)
            awaited: Any = task.get_coro()
            while awaited is not None:
                frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None)
                if frame is not None:
                    print(f"  {frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}", file=stacks)
                awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None)
        pytest.fail(f"{len(pending)} task(s) did not end when cancelled:\n{stacks.getvalue()}")


def board_login(page: Any, server_url: str, staff: Any) -> None:
    """Log in through the login page and land on the staff member's board."""
    page.goto(f"{server_url}/accounts/login/?next=/restaurants/{staff.restaurant.slug}/")
    page.fill("input[name=username]", staff.user.username)
    page.fill("input[name=password]", "pw-123456")
    page.click("input[type=submit]")
    page.wait_for_url(f"**/restaurants/{staff.restaurant.slug}/")
