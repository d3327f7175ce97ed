"""Calling async libraries (the channel layer) from sync code without a new loop per call.

``async_to_sync`` outside a running loop (WSGI workers, Celery, commands) makes a fresh event
loop for every call, and channels-redis then opens fresh connections each time. One
long-lived loop on a daemon thread keeps its connections and costs a thread hand-off.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_loop: asyncio.AbstractEventLoop | None = None
_lock = threading.Lock()


def background_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _lock:
        if _loop is None or _loop.is_closed():
            _loop = asyncio.new_event_loop()
            threading.Thread(target=_loop.run_forever, name="opsite-aio", daemon=True).start()
        return _loop


def run_async(coro: Coroutine[Any, Any, T], *, timeout: float) -> T:
    """Run a coroutine on the shared loop and wait for it, at most ``timeout`` seconds."""
    return asyncio.run_coroutine_threadsafe(coro, background_loop()).result(timeout=timeout)


PUBLISH_TIMEOUT_S = 5.0


def group_send_sync(group: str, message: dict[str, Any]) -> None:
    """Send to a channel-layer group from sync code; raises when the layer is unreachable."""
    from asgiref.sync import async_to_sync
    from channels.layers import InMemoryChannelLayer, get_channel_layer

    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("no channel layer is configured")
    if isinstance(layer, InMemoryChannelLayer):
        # The in-process layer lives in the caller's loop: it must be reached from there.
        async_to_sync(layer.group_send)(group, message)
    else:
        run_async(layer.group_send(group, message), timeout=PUBLISH_TIMEOUT_S)
