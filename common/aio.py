"""Calling async libraries (the channel layer) from sync code without a new loop per call.

``async_to_sync`` outside a running loop (WSGI workers, Celery, commands) makes a fresh event
loop for every call, and channels-redis then opens fresh connections each time. One
long-lived loop on a daemon thread keeps its connections and costs a thread hand-off.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar, cast

T = TypeVar("T")
P = ParamSpec("P")

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


HANDSHAKE_THREADS = 3  # each holds a pooled database connection only while it reads
# Its threads start with the first handshake; made here, so no lock or lazy set-up is needed.
_handshake_executor = ThreadPoolExecutor(HANDSHAKE_THREADS, thread_name_prefix="opsite-handshake")


def handshake_read(func: Callable[P, T]) -> Callable[P, Coroutine[Any, Any, T]]:
    """A socket's opening reads (its user, its access) as a database call on a few threads of
    their own, so that a thousand boards reconnecting at once are not queued one by one on the
    process's single thread for sync code. Django's connections are per thread; each call
    closes (gives back to the pool) the connection it used, as ``database_sync_to_async`` does."""
    from channels.db import database_sync_to_async

    return cast(
        Callable[P, Coroutine[Any, Any, T]],
        database_sync_to_async(func, thread_sensitive=False, executor=_handshake_executor),
    )
