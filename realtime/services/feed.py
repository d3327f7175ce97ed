"""Broadcasting committed events to the feed, with the outbox that catches what failed."""

from __future__ import annotations

import atexit
import logging
import threading
from collections import defaultdict
from datetime import timedelta

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from common.aio import group_send_sync
from common.background import BackgroundLoop

from ..frames import event_frame
from ..models import OrderEvent, Restaurant

log = logging.getLogger(__name__)

OUTBOX_BATCH = 500  # pragma: no mutate (a batch size: every size sends everything)


def feed_group(restaurant_id: int) -> str:
    return f"feed.{restaurant_id}"


class PublishedMarks:
    """Events handed to the channel layer, marked published in the database a batch at a time.

    Marking them on the ingest request itself would cost every request one more statement; a
    background thread marks what every request of the process published since its last pass,
    in one statement, well within the outbox's grace period (so the sweep does not re-send them
    meanwhile). Should the process die before a pass, the sweep re-sends those events; a board
    drops a frame whose seq it already has, so the cost is a repeat, never a loss."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[int] = []
        self.loop = BackgroundLoop("opsite-published-marks", self.flush, lambda: MARK_EVERY_S)
        atexit.register(self._flush_at_exit)

    def add(self, pks: list[int]) -> None:
        with self._lock:
            self._pending.extend(pks)
            if len(self._pending) > MARKS_KEPT:  # the database away for long: the sweep re-sends the rest
                del self._pending[: len(self._pending) - MARKS_KEPT]
        self.loop.ensure_running()

    def flush(self) -> None:
        """Mark what is pending, a bounded batch per statement; what a failed statement did not
        mark is kept for the next pass."""
        with self._lock:
            pks, self._pending = self._pending, []
        for start in range(0, len(pks), MARK_BATCH):
            batch = pks[start : start + MARK_BATCH]
            try:
                OrderEvent.objects.filter(pk__in=batch, published_at__isnull=True).update(published_at=timezone.now())
            except Exception:
                with self._lock:
                    self._pending[:0] = pks[start:]
                raise

    def _flush_at_exit(self) -> None:
        try:
            self.flush()
        except Exception as exc:
            log.warning("%d published events left unmarked at exit (%s); the sweep sends them again",
                        len(self._pending), exc)  # fmt: skip


MARK_EVERY_S = 0.5  # well under OPSITE_OUTBOX_GRACE_S
MARK_BATCH = 5000  # ids per statement
MARKS_KEPT = 200_000  # at most, while the database cannot be reached
published_marks = PublishedMarks()


def events_publish(
    *,
    restaurant: Restaurant,
    events: list[OrderEvent],
    committed_at: float | None = None,
    request_id: str = "",
    mark_later: bool = False,
) -> bool:
    """Send committed events to the restaurant's feed; leave them in the outbox on failure.

    ``committed_at`` (epoch seconds) is when the ingest transaction committed; an outbox
    re-send has none and counts from its oldest event's arrival, so a delayed delivery shows as
    one. The message's ``sent`` carries it with the ids the delivery-latency exemplars show.
    With ``mark_later`` the events are marked published by the process's next marking pass
    (the ingest path) instead of at once (the sweep, which reads what is still unmarked)."""
    frames = [[event.seq, event_frame(event, restaurant.slug)] for event in events]
    at = committed_at if committed_at is not None else min(e.received_at for e in events).timestamp()
    sent = {"at": at, "request_id": request_id, "trace_id": events[-1].trace_id}
    try:
        group = feed_group(restaurant.pk)
        group_send_sync(group, {"type": "feed.events", "group": group, "frames": frames, "sent": sent})
    except Exception:
        log.warning("feed publish failed for %s; %d events stay in the outbox", restaurant.slug, len(events))
        return False
    pks = [e.pk for e in events]
    if mark_later:
        published_marks.add(pks)
    else:
        OrderEvent.objects.filter(pk__in=pks).update(published_at=timezone.now())
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
