"""The staff order feed socket: ws/restaurants/<slug>/orders/?last_seq=N&epoch=E."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from common.aio import handshake_read
from common.http import error_frame
from common.series import pending
from common.socket_auth import socket_user
from common.sockets import CountedSocket
from common.validation import non_negative_int

from . import protocol, selectors
from .frames import FEED_SOCKET, LiveFrame
from .hub import FeedHub, get_hub
from .models import Restaurant
from .series import DELIVERY
from .services.feed import feed_group

CLOSE_BAD_REQUEST = 4400
CLOSE_NOT_LOGGED_IN = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_CLIENT_SILENT = 4408
CLOSE_TOO_MANY = 4429
CLOSE_TOO_SLOW = 4008
CLOSE_SERVER_ERROR = 1011  # something failed on the server: the board reconnects and resumes

log = logging.getLogger(__name__)

DELIVERY_SERIES = DELIVERY.labels()

ACKS_KEPT = 64  # live frames a board may still acknowledge
PING = json.dumps({"type": "ping"})
PONG = json.dumps({"type": "pong"})


@handshake_read
def _load_access(scope: dict[str, Any], slug: str) -> tuple[Any, Restaurant | None]:
    """The socket's user, and the restaurant when that user may watch it: one database call."""
    user = socket_user(scope)
    return user, selectors.restaurant_for_viewer(user, slug)


@database_sync_to_async
def _access_still_valid(user: Any, session: Any, restaurant: Restaurant) -> bool:
    now = selectors.fresh_user(user)
    return selectors.session_still_valid(session=session, user=now) and selectors.user_can_view(now, restaurant)


class StaffOrderFeedConsumer(CountedSocket, AsyncWebsocketConsumer):
    socket_kind = FEED_SOCKET
    # No per-socket channel: the process-wide hub receives from the layer and fans out.
    channel_layer_alias = "__feed_hub_only__"

    restaurant: Restaurant | None = None
    hub: FeedHub | None = None
    batched = False  # replays as one {"type":"events"} message per page (?batch=1)
    restaurant_id = 0
    board_id = ""

    async def connect(self) -> None:
        await self.accept()
        await self._guard("while starting", self._start())

    async def _guard(self, stage: str, work: Awaitable[None]) -> None:
        try:
            await work
        except Exception:
            log.exception("feed socket for %s failed %s", self.scope.get("path"), stage)
            await self._fail()

    async def _fail(self) -> None:
        """Any error becomes a close code, and the socket always leaves the hub (and so the
        user's socket count and the presence figures)."""
        await self._leave()
        with contextlib.suppress(Exception):
            await self.close(CLOSE_SERVER_ERROR)

    async def _leave(self) -> None:
        for task in getattr(self, "tasks", []):
            if task is not asyncio.current_task():
                task.cancel()
        if self.hub is not None and self.restaurant is not None:
            with contextlib.suppress(Exception):
                await self.hub.leave(feed_group(self.restaurant.pk), self)

    async def _start(self) -> None:
        self.tasks: list[asyncio.Task[None]] = []
        self.inbox: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue(maxsize=settings.OPSITE_FEED_OUTBOUND_MAX)
        self.bad_frames = 0
        self.last_client_frame = time.monotonic()
        user, restaurant = await _load_access(self.scope, self.scope["url_route"]["kwargs"]["slug"])
        if not user.is_authenticated:
            await self.close(CLOSE_NOT_LOGGED_IN)
            return
        if restaurant is None:
            await self.close(CLOSE_FORBIDDEN)
            return
        hub = get_hub()
        self.user_id: int = user.pk
        self.session_key: str | None = getattr(self.scope.get("session"), "session_key", None)
        self.restaurant_slug = restaurant.slug
        self.restaurant_id = restaurant.pk
        self.username = str(user.get_username())
        self.board_id = f"{hub.node}:{id(self):x}"
        self.connected_at = time.time()
        self.last_frame_at: float | None = None
        self.committed: dict[int, float] = {}  # recent live frames' commit times, for the board's acks
        self.ack_every = max(1, settings.OPSITE_FEED_ACK_EVERY)  # read once: settings lookups cost per frame
        # Subscribe before reading the head, so nothing committed in between is missed;
        # frames that arrive meanwhile wait in the inbox and are de-duplicated by seq.
        if not await hub.join(feed_group(restaurant.pk), self, cap=settings.OPSITE_FEED_MAX_SOCKETS_PER_USER):
            await self.close(CLOSE_TOO_MANY)
            return
        self.restaurant, self.hub = restaurant, hub
        self.restaurant_id = restaurant.pk
        head_seq, epoch = await hub.resume.head(restaurant, feed_group(restaurant.pk))
        last_seq, client_epoch = self._requested_position()
        plan = protocol.resume_plan(last_seq=last_seq, client_epoch=client_epoch, head_seq=head_seq, epoch=epoch,
                                    replay_max=settings.OPSITE_FEED_REPLAY_MAX)  # fmt: skip
        hello = {"type": "hello", "restaurant": restaurant.slug, "seq": head_seq, "epoch": epoch,
                 "heartbeat_s": settings.OPSITE_FEED_HEARTBEAT_S, "ack_every": settings.OPSITE_FEED_ACK_EVERY,
                 **plan.hello_fields()}  # fmt: skip
        await self.send(json.dumps(hello))
        if plan.kind is protocol.Resume.RESET:
            await self.send(json.dumps({"type": "reset", "seq": head_seq, "epoch": epoch}))
        elif plan.kind is protocol.Resume.REPLAY:
            assert last_seq is not None
            await self._replay(after_seq=last_seq, upto_seq=head_seq)
        self.last_seq = head_seq
        self.tasks = [asyncio.create_task(self._pump()), asyncio.create_task(self._heartbeat())]

    def _requested_position(self) -> tuple[int | None, str | None]:
        query = parse_qs(self.scope.get("query_string", b"").decode())
        self.batched = query.get("batch", [""])[0] == "1"
        raw_seq, epoch = query.get("last_seq", [None])[0], query.get("epoch", [None])[0]
        return (None if raw_seq is None else non_negative_int(raw_seq)), epoch

    async def _replay(self, *, after_seq: int, upto_seq: int) -> None:
        """Send every frame after ``after_seq`` up to ``upto_seq`` from the database, a page at a
        time: a board back after hours gets thousands of events without the socket holding them
        all at once."""
        assert self.restaurant is not None and self.hub is not None
        page = settings.OPSITE_FEED_REPLAY_PAGE
        while after_seq < upto_seq:
            frames = await self.hub.resume.frames_after(self.restaurant, feed_group(self.restaurant.pk),
                                                        after_seq=after_seq, upto_seq=upto_seq, limit=page)  # fmt: skip
            if not frames:
                break
            if self.batched:  # one message per page: a thousand boards back at once is a few messages each
                await self.send('{"type":"events","frames":[' + ",".join(text for _, text in frames) + "]}")
                after_seq = frames[-1][0]
            else:
                for seq, text in frames:
                    await self.send(text)
                    after_seq = seq
            self.last_seq = after_seq

    async def _catch_up(self, upto_seq: int | None) -> None:
        """Fill a gap from the database (after a lost or reordered broadcast)."""
        assert self.restaurant is not None and self.hub is not None
        if upto_seq is None:
            upto_seq, epoch = await self.hub.resume.head(self.restaurant, feed_group(self.restaurant.pk))
        else:
            epoch = self.restaurant.epoch
        plan = protocol.catch_up(last_seq=self.last_seq, upto_seq=upto_seq, replay_max=settings.OPSITE_FEED_REPLAY_MAX)
        if plan is protocol.CatchUp.RESET:
            await self.send(json.dumps({"type": "reset", "seq": upto_seq, "epoch": epoch}))
            self.last_seq = upto_seq
            return
        await self._replay(after_seq=self.last_seq, upto_seq=upto_seq)

    async def _pump(self) -> None:
        """The only writer once connected: frames go out in seq order, exactly once."""
        await self._guard("while sending", self._pump_frames())

    async def _pump_frames(self) -> None:
        while True:
            item = await self.inbox.get()
            kind = item[0]
            if kind == "frames":
                frame: LiveFrame
                for frame in item[1]:
                    step = protocol.on_frame(last_seq=self.last_seq, seq=frame.seq)
                    if step is protocol.Frame.DUPLICATE:
                        continue
                    if step is protocol.Frame.GAP:
                        await self._catch_up(frame.seq - 1)
                    # the message the hub built once for every socket, straight to the server
                    await self.base_send(frame.message)
                    self.last_seq = frame.seq
                    self._delivered(frame, item[2])
            elif kind == "resync":
                await self._catch_up(None)
            elif kind == "text":
                await self.send(item[1])

    def _delivered(self, frame: LiveFrame, delivery: tuple[float, dict[str, str]] | None) -> None:
        """The frame's counts and, with the commit time, its delivery latency: one batched write."""
        self.last_frame_at = time.time()
        if delivery is None or self.hub is None:
            for counter, amount in frame.counts:
                pending.count(counter, amount)
            return
        committed_at, labels = delivery
        seconds = max(0.0, self.last_frame_at - committed_at)
        DELIVERY_SERIES.observe_with(frame.counts, seconds, labels)
        self.hub.service.delivered(self.restaurant_id, seconds, self.last_frame_at)
        if frame.seq % self.ack_every == 0:  # the frames the board acknowledges
            self.committed[frame.seq] = committed_at
            if len(self.committed) > ACKS_KEPT:
                del self.committed[min(self.committed)]

    def _acked(self, seq: Any) -> None:
        """The board applied every frame up to ``seq``: the time since each one's commit."""
        if not isinstance(seq, int) or isinstance(seq, bool) or self.hub is None:
            return
        now = time.time()
        for sent in [s for s in self.committed if s <= seq]:
            self.hub.service.acked(self.restaurant_id, max(0.0, now - self.committed.pop(sent)))

    def board_state(self) -> dict[str, Any]:
        return {"board": self.board_id, "user": self.username, "last_seq": getattr(self, "last_seq", None),
                "last_frame_at": self.last_frame_at, "connected_at": self.connected_at,
                "node": self.hub.node if self.hub else "", "seen_at": time.time()}  # fmt: skip

    async def _heartbeat(self) -> None:
        last_access_check = time.monotonic()
        while True:
            await asyncio.sleep(settings.OPSITE_FEED_HEARTBEAT_S)
            pinged_at = time.monotonic()
            self.offer(("text", PING))
            await asyncio.sleep(settings.OPSITE_FEED_CLIENT_TIMEOUT_S)
            if self.last_client_frame < pinged_at:
                await self.close(CLOSE_CLIENT_SILENT)
                return
            if time.monotonic() - last_access_check >= settings.OPSITE_FEED_ACCESS_RECHECK_S:
                last_access_check = time.monotonic()
                assert self.restaurant is not None
                if not await _access_still_valid(self.scope["user"], self.scope.get("session"), self.restaurant):
                    await self.close(CLOSE_FORBIDDEN)
                    return

    # Called by the hub, in this process's event loop.
    def offer(self, item: tuple[Any, ...]) -> None:
        try:
            self.inbox.put_nowait(item)
        except asyncio.QueueFull:
            self._close_soon(CLOSE_TOO_SLOW)

    def revoke(self) -> None:
        self._close_soon(CLOSE_FORBIDDEN)

    def _close_soon(self, code: int) -> None:
        for task in self.tasks:
            task.cancel()
        self.tasks = [asyncio.create_task(self.close(code))]

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        await self._guard("on a client frame", self._receive(text_data, bytes_data))

    async def _receive(self, text_data: str | None, bytes_data: bytes | None) -> None:
        self.last_client_frame = time.monotonic()
        raw = text_data if text_data is not None else bytes_data or b""
        size = len(raw.encode()) if isinstance(raw, str) else len(raw)
        if size > settings.OPSITE_FEED_MAX_FRAME_BYTES:
            await self._bad_frame("too_large", f"frames are limited to {settings.OPSITE_FEED_MAX_FRAME_BYTES} bytes")
            return
        try:
            message = json.loads(raw)
        except (ValueError, RecursionError):
            await self._bad_frame("bad_json", "frames must be JSON objects")
            return
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "ping":
            self.offer(("text", PONG))
        elif kind == "ack":
            self._acked(message.get("seq"))
        elif kind != "pong":
            await self._bad_frame("unknown_type", "the server understands only ping, pong and ack")

    async def _bad_frame(self, code: str, message: str) -> None:
        self.bad_frames += 1
        if self.bad_frames > settings.OPSITE_FEED_MAX_BAD_FRAMES:
            self._close_soon(CLOSE_BAD_REQUEST)
            return
        self.offer(("text", error_frame(code, message)))

    async def disconnect(self, code: int) -> None:
        await self._leave()
