"""The outbox: events committed while the channel layer cannot be reached are kept, then swept."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from realtime.models import OrderEvent
from realtime.services import outbox_sweep
from realtime.services.feed import OUTBOX_BATCH
from tests.conftest import free_port

from .conftest import event, ingest_sync

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def layer_down(settings):
    """The channel layer points at a port where no Redis listens."""
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer",
                                           "CONFIG": {"hosts": [f"redis://127.0.0.1:{free_port()}/0"]}}}  # fmt: skip


def _age_all() -> None:
    OrderEvent.objects.update(received_at=timezone.now() - timedelta(minutes=5))


def test_events_stay_in_the_outbox_while_the_layer_is_down(make_staff, layer_down):
    staff = make_staff()
    ingest_sync(staff.restaurant, event("D-1"), event("D-2"))  # answered, stored, not published
    assert OrderEvent.objects.filter(published_at__isnull=True).count() == 2
    _age_all()
    assert outbox_sweep() == 0, "a sweep that could not send must not count the events as sent"
    assert OrderEvent.objects.filter(published_at__isnull=True).count() == 2


def test_a_sweep_sends_more_than_one_batch_in_one_run(make_staff, needs_redis):
    staff = make_staff()
    for first in (0, OUTBOX_BATCH):  # two batches of the API's largest size
        ingest_sync(staff.restaurant, *[event(f"B-{n}") for n in range(first, first + OUTBOX_BATCH)])
    OrderEvent.objects.update(published_at=None)  # as if the publish after commit had failed
    _age_all()
    assert outbox_sweep() == 2 * OUTBOX_BATCH
    assert not OrderEvent.objects.filter(published_at__isnull=True).exists()


def test_removing_staff_while_the_layer_is_down_still_removes_them(make_staff, layer_down):
    """The sockets are told through the layer; when it is down they find out on their own
    re-check, and the removal itself must not fail."""
    from realtime.models import StaffMembership
    from realtime.services import membership_remove

    staff = make_staff()
    membership = StaffMembership.objects.get(user=staff.user, restaurant=staff.restaurant)
    membership_remove(membership=membership)
    assert not StaffMembership.objects.filter(pk=membership.pk).exists()


def test_a_sweep_leaves_events_younger_than_its_grace_to_their_own_publish(make_staff, needs_redis):
    staff = make_staff()
    ingest_sync(staff.restaurant, event("Y-1"))
    OrderEvent.objects.update(published_at=None)  # received just now: its publish may be in flight
    assert outbox_sweep(older_than=timedelta(minutes=1)) == 0
    assert OrderEvent.objects.filter(published_at__isnull=True).count() == 1


def test_a_sweep_sends_each_restaurants_events_to_its_own_feed(make_staff, needs_redis):
    first, second = make_staff(), make_staff()
    for staff in (first, second):
        ingest_sync(staff.restaurant, event("only-one"))  # one event each
    OrderEvent.objects.update(published_at=None)
    _age_all()
    assert outbox_sweep() == 2
    assert not OrderEvent.objects.filter(published_at__isnull=True).exists()


async def test_a_resent_event_keeps_its_ingest_trace_and_counts_its_delay(make_staff, needs_redis):
    """The outbox re-send carries the stored trace id on its frame, and the delivery latency
    counts from the event's arrival, so the delay shows in the series."""
    from channels.db import database_sync_to_async
    from django.db import transaction

    from common.series import exemplars
    from realtime.services.ingest import _ingest_once
    from realtime.validation import clean_events

    from .conftest import next_frame, staff_feed

    trace = "1bf92f3577b34da6a3ce929d0e0e4736"

    def store_unpublished() -> None:
        """Stored as ingest stores it, as if its publish after commit had been lost."""
        cleaned, _ = clean_events([event("R-1")], max_batch=1)
        with transaction.atomic():
            _ingest_once(staff.restaurant, cleaned, trace)
        OrderEvent.objects.update(received_at=timezone.now() - timedelta(minutes=5))

    staff, feed, _ = await staff_feed(make_staff)
    try:
        await database_sync_to_async(store_unpublished)()
        assert await database_sync_to_async(outbox_sweep)() == 1
        resent = await next_frame(feed)
    finally:
        await feed.disconnect()
    assert resent["order_id"] == "R-1" and resent["trace_id"] == trace
    newest = max((hit for key, hit in exemplars.merged().items() if key[0] == "opsite_feed_delivery_latency_seconds"),
                 key=lambda hit: hit[2])  # fmt: skip
    assert newest[0] == {"trace_id": trace} and newest[1] >= 290  # five minutes late, and counted so
