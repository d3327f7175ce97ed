"""A Redis connection for asyncio whose commands can always be cancelled.

On Python 3.11 ``asyncio.wait_for`` drops a cancellation that arrives just as the awaited work
finishes, and redis-py sends every command through ``wait_for`` when a socket timeout is set.
A task cancelled at that moment (a feed hub stopping, a socket process shutting down) went on to
wait for the reply, then for the next message, for ever, and the event loop could not close.
This connection notices a cancellation that was requested during the send and did not come
through, drops the connection (its reply would be read by nobody) and raises it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from redis.asyncio.connection import Connection


class CancellableConnection(Connection):
    async def send_packed_command(self, command: bytes | str | Iterable[bytes], check_health: bool = True) -> None:
        task = asyncio.current_task()
        requested = task.cancelling() if task is not None else 0
        await super().send_packed_command(command, check_health)
        if task is not None and task.cancelling() > requested:
            await self.disconnect(nowait=True)
            raise asyncio.CancelledError


def cancellable_pool_options(url: str) -> dict[str, Any]:
    """Connection-pool options that use the connection above where the URL allows a choice
    (``rediss://`` and ``unix://`` URLs pick their own connection class)."""
    return {"connection_class": CancellableConnection} if url.startswith("redis://") else {}
