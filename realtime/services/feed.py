"""Broadcasting committed events to the feed, with the outbox that catches what failed."""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import timedelta

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from common.aio import group_send_sync

from ..frames import event_frame
from ..models import OrderEvent, Restaurant

log = logging.getLogger(__name__)

OUTBOX_BATCH = 500  # pragma: no mutate (a batch size: every size sends everything)


def feed_group(restaurant_id: int) -> str:
    return f"feed.{restaurant_id}"


def events_publish(
    *, restaurant: Restaurant, events: list[OrderEvent], committed_at: float | None = None, request_id: str = ""
) -> bool:
    """Send committed events to the restaurant's feed; leave them in the outbox on failure.

    ``committed_at`` (epoch seconds) is when the ingest transaction committed; an outbox
    re-send has none and counts from its oldest event's arrival, so a delayed delivery shows as
    one. The message's ``sent`` carries it with the ids the delivery-latency exemplars show."""
    frames = [[event.seq, event_frame(event, restaurant.slug)] for event in events]
    at = committed_at if committed_at is not None else min(e.received_at for e in events).timestamp()
    sent = {"at": at, "request_id": request_id, "trace_id": events[-1].trace_id}
    try:
        group = feed_group(restaurant.pk)
        group_send_sync(group, {"type": "feed.events", "group": group, "frames": frames, "sent": sent})
    except Exception:
        log.warning("feed publish failed for %s; %d events stay in the outbox", restaurant.slug, len(events))
        return False
    OrderEvent.objects.filter(pk__in=[e.pk for e in events]).update(published_at=timezone.now())
    return True


def _unpublished(older_than: timedelta) -> QuerySet[OrderEvent]:
    cutoff = timezone.now() - older_than
    return (
        OrderEvent.objects.filter(published_at__isnull=True, received_at__lte=cutoff)
        .select_related("restaurant")
        .order_by("restaurant_id", "seq")
    )


def outbox_sweep(*, older_than: timedelta | None = None) -> int:
    """Re-send events that were committed but never reached the channel layer; return how many went."""
    grace = older_than if older_than is not None else timedelta(seconds=settings.OPSITE_OUTBOX_GRACE_S)
    sent = 0
    while True:
        batch = list(_unpublished(grace)[:OUTBOX_BATCH])
        if not batch:
            return sent
        by_restaurant: dict[int, list[OrderEvent]] = defaultdict(list)
        for event in batch:
            by_restaurant[event.restaurant_id].append(event)
        for events in by_restaurant.values():
            if not events_publish(restaurant=events[0].restaurant, events=events):
                return sent
            sent += len(events)
        if len(batch) < OUTBOX_BATCH:
            return sent


def access_revoked_publish(*, restaurant_ids: list[int], user_id: int, session_key: str | None = None) -> None:
    """Tell every node to close this user's sockets on these restaurants (or only one session's)."""
    for restaurant_id in restaurant_ids:
        group = feed_group(restaurant_id)
        message = {"type": "feed.revoke", "group": group, "user_id": user_id, "session_key": session_key}
        try:
            group_send_sync(group, message)
        except Exception:
            # Sockets also re-check access on their own timer, so this only delays the close.
            log.warning("could not publish access revocation for user %s", user_id)
