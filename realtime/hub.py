"""One channel-layer subscription per process, fanned out to that process's sockets.

The channel layer carries one message per event batch per *process*, not per socket; the
hub hands the already-encoded frames to each subscribed socket's bounded inbox. After the
layer fails and comes back, the hub joins its groups again and asks every socket to catch up
from the database, so nothing sent during the outage is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import weakref
from collections import Counter
from typing import Any, Protocol, cast

from channels.layers import get_channel_layer
from django.conf import settings

from common.series import exemplar_labels

from .frames import live_frames
from .presence import RedisPresence, get_presence
from .resume_reads import ResumeReads
from .service_levels import ServiceTally

log = logging.getLogger(__name__)

PRESENCE_COALESCE_S = 0.25
SHARED, LOCAL_CLAIM, REFUSED = "shared", "local", "refused"  # how a capped join holds its place


class FeedSubscriber(Protocol):
    user_id: int
    session_key: str | None
    restaurant_slug: str
    restaurant_id: int
    board_id: str

    def board_state(self) -> dict[str, Any]: ...

    def offer(self, item: tuple[Any, ...]) -> None: ...

    def revoke(self) -> None: ...


class FeedHub:
    def __init__(self) -> None:
        self.node = f"{settings.OPSITE_NODE_NAME}:{os.getpid()}:{secrets.token_hex(3)}"
        self.groups: dict[str, set[FeedSubscriber]] = {}
        self._layer: Any = None
        self._channel: str | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._lock = asyncio.Lock()
        self._counts: Counter[str] = Counter()
        self._claims: Counter[int] = Counter()  # sockets of a user past the cap check, not yet joined
        self._shared_places: weakref.WeakSet[Any] = weakref.WeakSet()  # sockets holding a place in Redis
        self._presence_dirty = asyncio.Event()
        self.service = ServiceTally()  # service-level figures, reported with the presence
        self.resume = ResumeReads()  # what the sockets read on connecting, per restaurant, shared

    async def join(self, group: str, sub: FeedSubscriber, *, cap: int | None = None) -> bool:
        """Subscribe ``sub`` to ``group``; with a ``cap``, only while its user holds fewer than
        ``cap`` sockets on every node (False, and nothing joined, when not). With Redis the place
        is taken atomically across processes and held until the socket leaves."""
        place = await self._take_place(sub, cap) if cap is not None else None
        if place == REFUSED:
            return False
        try:
            async with self._lock:
                if self._channel is None:
                    self._layer = get_channel_layer()
                    self._channel = await self._layer.new_channel()
                    self._tasks = [
                        asyncio.create_task(self._receive_loop()),
                        asyncio.create_task(self._presence_loop()),
                    ]
                if group not in self.groups:
                    self.groups[group] = set()
                    self.service.first_board(sub.restaurant_id)
                    with contextlib.suppress(Exception):  # joined again by the receive loop once the layer is back
                        await self._layer.group_add(group, self._channel)
                        self.resume.subscribed(group)
                self.groups[group].add(sub)
                self._count(sub, +1)
        except BaseException:
            await self._give_place_back(sub)
            raise
        finally:
            if place == LOCAL_CLAIM:  # joined (and counted as such), or failed
                self._release_local_claim(sub.user_id)
        return True

    async def _take_place(self, sub: FeedSubscriber, cap: int) -> str:
        """SHARED (a place in Redis, held until the socket leaves), LOCAL_CLAIM (counted on this
        node until it joins), or REFUSED."""
        presence = get_presence()
        if isinstance(presence, RedisPresence):
            try:
                taken = await presence.claim(self.node, sub.user_id, cap, settings.OPSITE_PRESENCE_TTL_S)
            except Exception as exc:
                log.warning("presence store unreachable (%s); capping on this node's sockets only", exc)
            else:
                if taken:
                    self._shared_places.add(sub)
                return SHARED if taken else REFUSED
        # one process (no Redis), or Redis down: this node's exact count plus the others' published ones
        self._claims[sub.user_id] += 1
        if await self.user_sockets(sub.user_id) + self._claims[sub.user_id] > cap:
            self._release_local_claim(sub.user_id)
            return REFUSED
        return LOCAL_CLAIM

    async def _give_place_back(self, sub: FeedSubscriber) -> None:
        if sub not in self._shared_places:
            return
        self._shared_places.discard(sub)
        try:
            await cast(RedisPresence, get_presence()).release(self.node, sub.user_id)
        except Exception as exc:  # the place goes with this node's presence when it expires
            log.warning("could not give back a socket place of user %s: %s", sub.user_id, exc)

    async def leave(self, group: str, sub: FeedSubscriber) -> None:
        async with self._lock:
            members = self.groups.get(group)
            if members is None:
                return
            if sub in members:
                members.discard(sub)
                self._count(sub, -1)
                self.service.board_left(sub.restaurant_id, sub.board_id)
            if not members:
                del self.groups[group]
                self.service.last_board_left(sub.restaurant_id)
                self.resume.unsubscribed(group)
                with contextlib.suppress(Exception):
                    await self._layer.group_discard(group, self._channel)
            if not self.groups:
                tasks, self._tasks, self._channel = self._tasks, [], None
                for task in tasks:
                    task.cancel()
        await self._give_place_back(sub)  # a Redis round trip: outside the hub's lock
        if not self.groups:
            await self._publish_presence()  # the node holds no sockets any more

    def _count(self, sub: FeedSubscriber, delta: int) -> None:
        self._counts[f"u:{sub.user_id}"] += delta
        self._counts[f"r:{sub.restaurant_slug}"] += delta
        self._presence_dirty.set()

    async def user_sockets(self, user_id: int) -> int:
        """Sockets this user holds on every node: with Redis the places taken there; else this
        node's exact count plus the others' published ones."""
        presence = get_presence()
        try:
            if isinstance(presence, RedisPresence):
                return await presence.user_places(user_id)
            others = await presence.user_sockets(user_id, except_node=self.node)
        except Exception as exc:
            log.warning("presence store unreachable (%s); counting this node's sockets only", exc)
            others = 0
        return self._counts[f"u:{user_id}"] + others

    def _release_local_claim(self, user_id: int) -> None:
        self._claims[user_id] -= 1
        if self._claims[user_id] <= 0:
            del self._claims[user_id]

    def socket_count(self) -> int:
        counts = dict(self._counts)  # one C-level copy: safe while the loop's thread updates it
        return sum(n for key, n in counts.items() if key.startswith("r:"))

    def counts(self) -> dict[str, int]:
        return {key: n for key, n in self._counts.items() if n > 0}

    async def _publish_presence(self) -> None:
        self._presence_dirty.clear()
        try:
            await get_presence().publish(self.node, self.counts(), settings.OPSITE_PRESENCE_TTL_S)
        except Exception as exc:
            log.warning("could not publish socket presence for %s: %s", self.node, exc)
        await self._report_service()

    async def _report_service(self) -> None:
        boards: dict[int, dict[str, dict[str, Any]]] = {}
        for members in list(self.groups.values()):
            for sub in list(members):
                with contextlib.suppress(Exception):  # a socket still starting has no position yet
                    boards.setdefault(sub.restaurant_id, {})[sub.board_id] = sub.board_state()
        report = self.service.take(boards)
        if report.empty():
            return
        try:
            await get_presence().record_service(report)
        except Exception as exc:
            log.warning("could not report service levels for %s: %s", self.node, exc)
            self.service.give_back(report)

    async def _presence_loop(self) -> None:
        """Publish on change, coalesced (a burst of connects costs one write), and on a timer."""
        while True:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation
            # that arrives as the event is set, and the loop would then outlive its socket's hub.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(settings.OPSITE_PRESENCE_TTL_S / 3):
                    await self._presence_dirty.wait()
                await asyncio.sleep(PRESENCE_COALESCE_S)
            await self._publish_presence()

    async def _rejoin(self) -> None:
        for group in list(self.groups):
            await self._layer.group_add(group, self._channel)
            self.resume.subscribed(group)

    async def _receive_loop(self) -> None:
        backoff = 0.1
        rejoin = False
        while True:
            try:
                if rejoin:
                    await self._rejoin()
                    rejoin = False
                    log.info("channel layer back; %d groups joined again", len(self.groups))
                    self._broadcast(("resync",))
                message = await self._layer.receive(self._channel)
                backoff = 0.1
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if _being_cancelled():
                    # the layer's own clean-up on cancellation can raise something else in its
                    # place; the hub asked this loop to stop, so it stops
                    raise asyncio.CancelledError from exc
                if not rejoin:
                    log.warning("channel layer receive failed: %s", exc)
                    self.resume.subscriptions_lost()
                rejoin = True
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            self._dispatch(message)

    def _broadcast(self, item: tuple[Any, ...]) -> None:
        for members in self.groups.values():
            for sub in list(members):
                sub.offer(item)

    def _dispatch(self, message: dict[str, Any]) -> None:
        members = self.groups.get(message.get("group", ""), set())
        kind = message.get("type")
        if kind == "feed.events":
            sent = message.get("sent")
            # when the events committed and the exemplar ids, made once for every socket here
            delivery = (
                (sent["at"], exemplar_labels(sent.get("request_id", ""), sent.get("trace_id", ""))) if sent else None
            )
            self.resume.received(message.get("group", ""), message["frames"])
            if members:
                item = ("frames", live_frames(message["frames"]), delivery)
                for sub in list(members):
                    sub.offer(item)
        elif kind == "feed.revoke":
            for sub in list(members):
                if sub.user_id == message["user_id"] and message.get("session_key") in (None, sub.session_key):
                    sub.revoke()


def _being_cancelled() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, FeedHub] = weakref.WeakKeyDictionary()


def get_hub() -> FeedHub:
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        hub = _hubs[loop] = FeedHub()
    return hub


def local_socket_count() -> int:
    """Staff sockets open in this process, over every event loop (read from any thread)."""
    return sum(hub.socket_count() for hub in list(_hubs.values()))
