"""What a socket reads when it connects or resumes (the stream head, the events it missed),
answered for a restaurant's sockets together: when a socket process restarts, its thousand
boards come back within seconds and must not cost a thousand pairs of queries.

Per process and restaurant (per feed group), the hub keeps:

- **the head**, once read from the database after the hub's subscription to the group was
  established, then moved forward by every frame the hub receives. A socket joins the group
  before it asks, on the same event loop as the hub's dispatch: every frame dispatched before
  its question is counted in the head it gets, every later one is delivered to it. The head is
  read again after ``OPSITE_FEED_HEAD_TTL_S`` and whenever the subscription was lost.
- **the recent frames** (``OPSITE_FEED_RECENT_FRAMES``), from the frames it receives and the
  pages it reads: a replay they cover needs no query. Frames are immutable once committed.

Both only with a channel layer shared by every process (Redis): the in-process one does not
carry what other processes ingest.

Reads the hub cannot answer are gathered for ``OPSITE_FEED_RESUME_BATCH_MS`` and answered
together: one head read, and one query from the lowest ``after_seq`` of the batch (further
queries only for requests the page did not reach). Each batch's queries start after every
request in it was made."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings
from prometheus_client import Counter

from .models import Restaurant
from .stream import feed_frames_after, stream_head

Frames = list[tuple[int, str]]


def _read_head(restaurant_id: int) -> tuple[int, str]:
    return stream_head(restaurant_id)


def _read_frames(**kwargs: Any) -> Frames:
    return feed_frames_after(**kwargs)


READS = Counter("opsite_feed_resume_reads", "Resume reads asked for by feed sockets, by kind", ["kind"])
QUERIES = Counter("opsite_feed_resume_queries", "Database queries that answered the resume reads, by kind", ["kind"])


@dataclass
class _Stream:
    """What the hub knows of one restaurant's stream."""

    head: tuple[int, str] | None = None
    head_read_at: float = 0.0
    frames: dict[int, str] = field(default_factory=dict)

    def remember(self, rows: Iterable[tuple[int, str]]) -> None:
        for seq, text in rows:
            self.frames[seq] = text
        excess = len(self.frames) - settings.OPSITE_FEED_RECENT_FRAMES
        if excess > 0:
            for seq in sorted(self.frames)[:excess]:
                del self.frames[seq]

    def covered(self, after: int, upto: int, limit: int) -> Frames | None:
        """The frames after ``after`` up to ``upto`` (at most ``limit``) when every one is here."""
        last = min(upto, after + limit)
        if last <= after:
            return []
        if (after + 1) not in self.frames or last not in self.frames:
            return None
        rows = []
        for seq in range(after + 1, last + 1):
            text = self.frames.get(seq)
            if text is None:
                return None
            rows.append((seq, text))
        return rows


@dataclass
class _FramesWanted:
    after: int
    upto: int
    limit: int
    answer: asyncio.Future[Frames]


@dataclass
class _Batch:
    restaurant: Restaurant
    group: str
    subscribed: bool  # the hub's subscription stood when the batch began (so its head can be kept)
    heads: list[asyncio.Future[tuple[int, str]]] = field(default_factory=list)
    frames: list[_FramesWanted] = field(default_factory=list)


def _answer(future: asyncio.Future[Any], value: Any) -> None:
    if not future.done():  # its socket may have gone meanwhile
        future.set_result(value)


class ResumeReads:
    """One per event loop, kept by the loop's feed hub, which tells it what it receives."""

    def __init__(self) -> None:
        self._streams: dict[str, _Stream] = {}
        self._subscribed: set[str] = set()
        self._pending: dict[str, _Batch] = {}
        self._running: set[asyncio.Task[None]] = set()

    # -- told by the hub ----------------------------------------------------------------------
    def subscribed(self, group: str) -> None:
        # The in-process layer does not carry what other processes ingest (the embedded default's
        # jobs and demo data): there the head is read for every socket.
        if "InMemory" not in settings.CHANNEL_LAYERS.get("default", {}).get("BACKEND", ""):
            self._subscribed.add(group)

    def unsubscribed(self, group: str) -> None:
        self._subscribed.discard(group)
        self._streams.pop(group, None)

    def subscriptions_lost(self) -> None:
        """The channel layer failed: frames may be missed until the hub joins again."""
        self._subscribed.clear()
        for stream in self._streams.values():
            stream.head = None

    def received(self, group: str, rows: list[list[Any]]) -> None:
        stream = self._streams.get(group)
        if stream is None:
            return
        stream.remember((int(seq), text) for seq, text in rows)
        if stream.head is not None and rows:
            stream.head = (max(stream.head[0], max(int(seq) for seq, _ in rows)), stream.head[1])

    # -- asked by the sockets -----------------------------------------------------------------
    async def head(self, restaurant: Restaurant, group: str) -> tuple[int, str]:
        """The stream's (last seq, epoch): every frame after it reaches a socket already joined."""
        READS.labels("head").inc()
        stream = self._streams.get(group)
        if (group in self._subscribed and stream is not None and stream.head is not None
                and time.monotonic() - stream.head_read_at < settings.OPSITE_FEED_HEAD_TTL_S):  # fmt: skip
            return stream.head
        future: asyncio.Future[tuple[int, str]] = asyncio.get_running_loop().create_future()
        self._batch(restaurant, group).heads.append(future)
        return await future

    async def frames_after(self, restaurant: Restaurant, group: str, *, after_seq: int, upto_seq: int,
                           limit: int) -> Frames:  # fmt: skip
        """The frames after ``after_seq`` up to ``upto_seq``, at most ``limit``, in order."""
        READS.labels("frames").inc()
        stream = self._streams.get(group)
        rows = stream.covered(after_seq, upto_seq, limit) if stream is not None else None
        if rows is not None:
            return rows
        future: asyncio.Future[Frames] = asyncio.get_running_loop().create_future()
        self._batch(restaurant, group).frames.append(_FramesWanted(after_seq, upto_seq, limit, future))
        return await future

    # -- the batches --------------------------------------------------------------------------
    def _batch(self, restaurant: Restaurant, group: str) -> _Batch:
        batch = self._pending.get(group)
        if batch is None:
            batch = self._pending[group] = _Batch(restaurant, group, subscribed=group in self._subscribed)
            task = asyncio.get_running_loop().create_task(self._run_after_window(group))
            self._running.add(task)
            task.add_done_callback(self._running.discard)
        return batch

    async def _run_after_window(self, group: str) -> None:
        await asyncio.sleep(settings.OPSITE_FEED_RESUME_BATCH_MS / 1000)
        batch = self._pending.pop(group)
        waiting: list[asyncio.Future[Any]] = [*batch.heads, *(w.answer for w in batch.frames)]
        try:
            await self._read(batch)
        except BaseException as exc:
            for future in waiting:
                if not future.done():
                    future.set_exception(exc if isinstance(exc, Exception) else RuntimeError("resume read cancelled"))
            if not isinstance(exc, Exception):
                raise

    def _stream(self, batch: _Batch) -> _Stream | None:
        """Where to keep what the batch read: only while the hub's subscription stands (and
        stood when the batch began), so frames dispatched meanwhile were seen."""
        if not batch.subscribed or batch.group not in self._subscribed:
            return None
        return self._streams.setdefault(batch.group, _Stream())

    async def _read(self, batch: _Batch) -> None:
        if batch.heads:
            QUERIES.labels("head").inc()
            read_at = time.monotonic()
            head = await database_sync_to_async(_read_head)(batch.restaurant.pk)
            stream = self._stream(batch)
            if stream is not None:
                if stream.head is not None and stream.head[1] == head[1]:
                    head = (max(head[0], stream.head[0]), head[1])
                stream.head, stream.head_read_at = head, read_at
            for future in batch.heads:
                _answer(future, head)
        wanted = sorted((w for w in batch.frames if not w.answer.done()), key=lambda w: w.after)
        while wanted:
            low, high = wanted[0].after, max(w.upto for w in wanted)
            page = max(w.limit for w in wanted)
            QUERIES.labels("frames").inc()
            rows = await database_sync_to_async(_read_frames)(
                restaurant=batch.restaurant, after_seq=low, upto_seq=high, limit=page
            )
            stream = self._stream(batch)
            if stream is not None:
                stream.remember(rows)
            reached = rows[-1][0] if len(rows) == page else high  # a full page may stop short of high
            later: list[_FramesWanted] = []
            for want in wanted:
                if want.after >= reached and want.after < want.upto:
                    later.append(want)  # its events start past this page: the next query
                    continue
                _answer(want.answer, [row for row in rows if want.after < row[0] <= want.upto][: want.limit])
            wanted = later
