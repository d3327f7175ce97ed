"""WebSocket series for every socket kind: frames and bytes sent by frame type, connects, and
closes by close code (codes outside the known set count as ``other``)."""

from __future__ import annotations

import re
from typing import Any

from channels.consumer import get_handler_name
from prometheus_client import Counter

from .series import CountedChild, bounded

FRAMES = Counter("opsite_ws_frames_sent", "WebSocket frames sent, by socket kind and frame type", ["socket", "type"])
FRAME_BYTES = Counter("opsite_ws_sent_bytes", "WebSocket bytes sent, by socket kind and frame type", ["socket", "type"])
CONNECTS = Counter("opsite_ws_connects", "WebSocket connections opened, by socket kind", ["socket"])
CLOSES = Counter("opsite_ws_closes", "WebSocket connections closed, by socket kind and close code", ["socket", "code"])

FRAME_TYPES = frozenset({
    "hello", "reset", "ping", "pong", "error", "metrics", "orders", "alert.fired", "alert.resolved",
    "backup.finished", "order.created", "order.updated", "order.paid", "order.cancelled", "order.completed",
})  # fmt: skip
CLOSE_CODES = frozenset(
    {"1000", "1001", "1005", "1006", "1011", "1012", "4008", "4400", "4401", "4403", "4408", "4429"}
)
_TYPE = re.compile(r'\{\s*"type"\s*:\s*"([A-Za-z._]{1,32})"')


def frame_type(text: str) -> str:
    found = _TYPE.match(text, 0, 64)
    return bounded(found.group(1), FRAME_TYPES) if found else "other"


_children: dict[tuple[str, str], tuple[CountedChild, CountedChild]] = {}


def frame_counters(
    socket_kind: str, text: str | None, data: bytes | None = None
) -> tuple[CountedChild, CountedChild, int]:
    """The frames and bytes counters a frame counts in, and its size."""
    kind = frame_type(text) if text is not None else "binary"
    key = (socket_kind, kind)
    children = _children.get(key)
    if children is None:
        children = _children[key] = (CountedChild(FRAMES.labels(*key)), CountedChild(FRAME_BYTES.labels(*key)))
    if text is None:
        return children[0], children[1], len(data or b"")
    # the JSON frames are ASCII: their length is their size
    return children[0], children[1], len(text) if text.isascii() else len(text.encode())


class CountedSocket:
    """Mixed into an AsyncWebsocketConsumer (before it): counts what the socket sends and how it
    ends, and hands each message to its handler without a trip to the thread for sync code."""

    socket_kind = "socket"
    _close_code: int | None = None

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Channels gives the thread for sync code a sweep of old database connections before
        every message (a thread hop, one at a time per process): for every pong and ack of every
        board. These sockets reach the database only through ``database_sync_to_async`` and
        ``common.aio.handshake_read``, which sweep around each call, so no sweep is needed here."""
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"no handler for message type {message['type']}")
        await handler(message)

    async def websocket_connect(self, message: dict[str, Any]) -> None:
        CONNECTS.labels(self.socket_kind).inc()
        await super().websocket_connect(message)  # type: ignore[misc]

    async def send(self, text_data: str | None = None, bytes_data: bytes | None = None, close: bool = False) -> None:
        await super().send(text_data, bytes_data, close)  # type: ignore[misc]
        frames, sent_bytes, size = frame_counters(self.socket_kind, text_data, bytes_data)
        frames.inc()
        sent_bytes.inc(size)

    async def close(self, code: int | bool | None = None, reason: str | None = None) -> None:
        if self._close_code is None and isinstance(code, int) and not isinstance(code, bool):
            self._close_code = code
        await super().close(code, reason)  # type: ignore[misc]

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        code = self._close_code if self._close_code is not None else message.get("code", 1005)
        CLOSES.labels(self.socket_kind, bounded(str(code), CLOSE_CODES)).inc()
        await super().websocket_disconnect(message)  # type: ignore[misc]
