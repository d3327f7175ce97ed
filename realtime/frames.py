"""The shape of a feed event, and its JSON text built once for every socket that gets it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from common.sockets import frame_counters

from .models import OrderEvent


def event_payload(event: OrderEvent, restaurant_slug: str) -> dict[str, Any]:
    return {
        "type": event.type,
        "seq": event.seq,
        "id": event.pk,
        "restaurant": restaurant_slug,
        "order_id": event.order_id,
        "total_amount": str(event.total_amount),
        "currency": event.currency,
        "items_count": event.items_count,
        "payment_method": event.payment_method,
        "table": event.table,
        "occurred_at": event.occurred_at.isoformat(),
        "data": event.data,
        "trace_id": event.trace_id,
    }


def event_frame(event: OrderEvent, restaurant_slug: str) -> str:
    return json.dumps(event_payload(event, restaurant_slug), separators=(",", ":"))


FEED_SOCKET = "feed"  # the socket kind the feed's frames are counted under


@dataclass(frozen=True, slots=True)
class LiveFrame:
    """A broadcast event's frame as the hub hands it to every socket of its process: the ASGI
    message is built, and the counters it counts in are found, once for all of them."""

    seq: int
    message: dict[str, str]
    counts: tuple[tuple[Any, float], ...]  # (frames counter, 1), (bytes counter, size)


def live_frames(frames: list[list[Any]]) -> list[LiveFrame]:
    """``[[seq, text], ...]`` as the channel layer carries them."""
    live = []
    for seq, text in frames:
        counted_frames, counted_bytes, size = frame_counters(FEED_SOCKET, text)
        live.append(LiveFrame(seq, {"type": "websocket.send", "text": text},
                              ((counted_frames.child, 1.0), (counted_bytes.child, float(size)))))  # fmt: skip
    return live
