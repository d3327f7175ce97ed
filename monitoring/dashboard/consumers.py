"""The ops dashboard socket, ws/ops/: live figures every few seconds and ops events as they happen.

Figures are pushed on a timer (coalesced; one computation per interval per process, whatever
the number of dashboards open); alert and backup events arrive through the channel-layer
group ``ops`` and are forwarded as they come.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import Counter
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from common.aio import handshake_read
from common.http import error_frame
from common.socket_auth import socket_user
from common.sockets import CountedSocket
from monitoring.auth import can_view_dashboard
from monitoring.dashboard.figures import live_figures
from monitoring.dashboard.services import OPS_GROUP
from realtime.selectors import fresh_user, session_still_valid

log = logging.getLogger(__name__)

CLOSE_NOT_LOGGED_IN = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_BAD_REQUEST = 4400
CLOSE_TOO_MANY = 4429
MAX_BAD_FRAMES = 20
_open_by_user: Counter[int] = Counter()  # this process's dashboards per user

_live = database_sync_to_async(live_figures.get)


@handshake_read
def _open_access(scope: dict[str, Any]) -> tuple[Any, bool]:
    """The socket's user and whether it may see the dashboard: one database call."""
    user = socket_user(scope)
    return user, user.is_authenticated and can_view_dashboard(user)


@database_sync_to_async
def _still_allowed(user: Any, session: Any) -> bool:
    """Logged in with the same session and password, active, and still permitted."""
    now = fresh_user(user)
    return now is not None and session_still_valid(session=session, user=now) and can_view_dashboard(now)


class OpsDashboardConsumer(CountedSocket, AsyncWebsocketConsumer):
    socket_kind = "ops"

    groups: list[str] = []
    pusher: asyncio.Task[None] | None = None
    guard: asyncio.Task[None] | None = None
    joined = False
    counted: int | None = None  # the user whose place this socket holds

    async def connect(self) -> None:
        await self.accept()
        self.bad_frames = 0
        user, allowed = await _open_access(self.scope)
        if not user.is_authenticated:
            await self.close(CLOSE_NOT_LOGGED_IN)
            return
        if not allowed:
            await self.close(CLOSE_FORBIDDEN)
            return
        if _open_by_user[user.pk] >= settings.OPSITE_OPS_MAX_SOCKETS_PER_USER:
            await self.close(CLOSE_TOO_MANY)
            return
        _open_by_user[user.pk] += 1
        self.counted = user.pk
        if self.channel_layer is not None:
            try:
                await self.channel_layer.group_add(OPS_GROUP, self.channel_name)
                self.joined = True
            except Exception as exc:  # the figures still flow; only pushed events are missed
                log.warning("ops socket without events: channel layer unavailable (%s)", exc)
        await self.send(json.dumps({"type": "hello", "push_s": settings.OPSITE_DASHBOARD_PUSH_S}))
        self.pusher = asyncio.create_task(self._push_figures())
        self.guard = asyncio.create_task(self._recheck_access())

    async def _recheck_access(self) -> None:
        """Session, password, activity and permission, every OPSITE_FEED_ACCESS_RECHECK_S."""
        while True:
            await asyncio.sleep(settings.OPSITE_FEED_ACCESS_RECHECK_S)
            try:
                allowed = await _still_allowed(self.scope["user"], self.scope.get("session"))
            except Exception as exc:  # the database is away: keep the socket, check again later
                log.warning("ops socket could not re-check access: %s", exc)
                continue
            if not allowed:
                await self.close(CLOSE_FORBIDDEN)
                return

    async def _push_figures(self) -> None:
        while True:
            try:
                figures = await _live()
            except Exception as exc:
                log.warning("ops figures unavailable: %s", exc)
            else:
                orders = figures["orders_by_restaurant"]
                await self.send(json.dumps({"type": "metrics", "data": figures}, default=str))
                await self.send(json.dumps({"type": "orders", "data": orders}))
            await asyncio.sleep(settings.OPSITE_DASHBOARD_PUSH_S)

    async def disconnect(self, code: int) -> None:
        if self.counted is not None:
            _open_by_user[self.counted] -= 1
            if _open_by_user[self.counted] <= 0:
                del _open_by_user[self.counted]
            self.counted = None
        for task in (self.pusher, self.guard):
            if task is not None and task is not asyncio.current_task():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self.joined and self.channel_layer is not None:
            with contextlib.suppress(Exception):
                await self.channel_layer.group_discard(OPS_GROUP, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            frame = json.loads(text_data or "")
            kind = frame.get("type") if isinstance(frame, dict) else None
        except (ValueError, RecursionError):
            kind, frame = None, None
        if frame is None:
            await self._bad("bad_json", "frames are JSON objects")
        elif kind == "ping":
            await self.send(json.dumps({"type": "pong"}))
        elif kind != "pong":
            await self._bad("unknown_type", "the server accepts ping and pong")

    async def _bad(self, code: str, message: str) -> None:
        self.bad_frames += 1
        if self.bad_frames > MAX_BAD_FRAMES:
            await self.close(CLOSE_BAD_REQUEST)
        else:
            await self.send(error_frame(code, message))

    async def ops_revoke(self, event: dict[str, Any]) -> None:
        """A user logged out: close that session's dashboards (all of the user's without a session)."""
        user = self.scope.get("user")
        session_key = getattr(self.scope.get("session"), "session_key", None)
        if user is not None and event["user_id"] == user.pk and event.get("session_key") in (None, session_key):
            await self.close(CLOSE_FORBIDDEN)

    async def ops_event(self, event: dict[str, Any]) -> None:
        """An event for every dashboard (alert fired/resolved, backup finished): sent as it is."""
        await self.send(json.dumps(event["frame"], default=str))
