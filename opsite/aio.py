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
