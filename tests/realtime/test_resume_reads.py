"""The resume reads of one restaurant's sockets, answered together: slices of one page, a
further query only for those the page did not reach, and the frames kept for the next ones."""

from __future__ import annotations

import asyncio

import pytest
from channels.db import database_sync_to_async

from realtime.resume_reads import QUERIES, ResumeReads
from realtime.services.feed import feed_group

from .conftest import event, ingest

pytestmark = pytest.mark.django_db(transaction=True)


def queries(kind: str) -> float:
    return QUERIES.labels(kind)._value.get()


async def test_a_batch_is_answered_by_one_query_per_page_it_needs(make_staff, settings):
    settings.OPSITE_FEED_RESUME_BATCH_MS = 20
    staff = await database_sync_to_async(make_staff)()
    await ingest(staff.restaurant, *[event(f"R{n}") for n in range(30)])
    restaurant, group = staff.restaurant, feed_group(staff.restaurant.pk)
    reads = ResumeReads()
    reads.subscribed(group)
    before = queries("frames")
    low, middle, high, none = await asyncio.gather(
        reads.frames_after(restaurant, group, after_seq=0, upto_seq=30, limit=10),
        reads.frames_after(restaurant, group, after_seq=5, upto_seq=30, limit=10),
        reads.frames_after(restaurant, group, after_seq=25, upto_seq=30, limit=10),
        reads.frames_after(restaurant, group, after_seq=30, upto_seq=30, limit=10),
    )
    assert [seq for seq, _ in low] == list(range(1, 11))
    assert [seq for seq, _ in middle] == list(range(6, 11))  # the rest on its next page
    assert [seq for seq, _ in high] == list(range(26, 31))
    assert none == []
    assert queries("frames") - before == 2  # from 0, then from 25 for the one the page did not reach

    kept = await reads.frames_after(restaurant, group, after_seq=3, upto_seq=8, limit=10)
    assert [seq for seq, _ in kept] == [4, 5, 6, 7, 8] and queries("frames") - before == 2

    head_before = queries("head")
    heads = await asyncio.gather(*[reads.head(restaurant, group) for _ in range(20)])
    assert set(heads) == {(30, restaurant.epoch)} and queries("head") - head_before == 1
    reads.received(group, [[31, '{"seq": 31}']])  # a frame the hub received moves the head on
    assert await reads.head(restaurant, group) == (31, restaurant.epoch)
    assert queries("head") - head_before == 1
    reads.subscriptions_lost()  # frames may have been missed: read it again
    assert await reads.head(restaurant, group) == (30, restaurant.epoch)
    assert queries("head") - head_before == 2
