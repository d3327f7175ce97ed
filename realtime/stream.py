"""Reads of a restaurant's stream: where it is, and the frames of the events after a seq. Kept
apart from the selectors (which read the hub's figures) so the hub's resume reads can use them."""

from __future__ import annotations

from .frames import event_frame
from .models import OrderEvent, Restaurant


def stream_head(restaurant_id: int) -> tuple[int, str]:
    last_seq, epoch = Restaurant.objects.values_list("last_seq", "epoch").get(pk=restaurant_id)
    return last_seq, epoch


def feed_frames_after(*, restaurant: Restaurant, after_seq: int, upto_seq: int, limit: int | None = None
                      ) -> list[tuple[int, str]]:  # fmt: skip
    """The feed frames of the events after ``after_seq`` up to ``upto_seq``, in order; at most
    ``limit`` of them (a page: the next one starts after the last seq returned)."""
    events = OrderEvent.objects.filter(restaurant=restaurant, seq__gt=after_seq, seq__lte=upto_seq).order_by("seq")
    if limit is not None:
        events = events[:limit]
    return [(e.seq, event_frame(e, restaurant.slug)) for e in events]
