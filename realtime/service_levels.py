"""This process's service-level figures for each restaurant, reported with its presence:
deliveries (the event's commit to its frame written on a socket) and acknowledgements (the
commit to the board's ``ack``, as the board page sees it), each counted late past
``OPSITE_SLO_DELIVERY_WITHIN_S``; the seconds at least one of the restaurant's boards was
connected here; and each board's position. Every process adds its report to the shared
tallies (``presence.record_service``), read per minute by the snapshot job."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from django.conf import settings

from .presence import ServiceReport


def _minute(at: float) -> int:
    return int(at // 60)


class ServiceTally:
    def __init__(self) -> None:
        self.late_after_s = settings.OPSITE_SLO_DELIVERY_WITHIN_S  # read once: counted per frame
        self._report = ServiceReport()
        self._connected_from: dict[int, float] = {}  # restaurant -> since when (or the last report)

    def _count(self, restaurant_id: int, name: str, seconds: float, at: float | None = None) -> None:
        counts = self._report.counts.setdefault((restaurant_id, _minute(at or time.time())), Counter())
        counts[name] += 1
        if seconds > self.late_after_s:
            counts[f"{name}_late"] += 1

    def delivered(self, restaurant_id: int, seconds: float, at: float) -> None:
        """Called for every frame written: ``at`` is the time the socket already read."""
        self._count(restaurant_id, "delivered", seconds, at)

    def acked(self, restaurant_id: int, seconds: float) -> None:
        self._count(restaurant_id, "acked", seconds)

    def _add_connected(self, restaurant_id: int, start: float, end: float) -> None:
        for second in range(int(start), int(end) + 1):
            self._report.connected.setdefault((restaurant_id, second // 60), set()).add(second % 60)

    def first_board(self, restaurant_id: int) -> None:
        self._connected_from.setdefault(restaurant_id, time.time())

    def last_board_left(self, restaurant_id: int) -> None:
        start = self._connected_from.pop(restaurant_id, None)
        if start is not None:
            self._add_connected(restaurant_id, start, time.time())

    def board_left(self, restaurant_id: int, board: str) -> None:
        self._report.gone.setdefault(restaurant_id, []).append(board)

    def take(self, boards: dict[int, dict[str, dict[str, Any]]]) -> ServiceReport:
        """The report since the last one, with the boards' state now; restaurants with boards
        count as connected up to now."""
        now = time.time()
        for restaurant_id, start in list(self._connected_from.items()):
            self._add_connected(restaurant_id, start, now)
            self._connected_from[restaurant_id] = now
        report, self._report = self._report, ServiceReport()
        report.boards = boards
        return report

    def give_back(self, report: ServiceReport) -> None:
        """A report that could not be written is added to the next one (the boards' state is
        taken afresh)."""
        for key, counts in report.counts.items():
            self._report.counts.setdefault(key, Counter()).update(counts)
        for key, seconds in report.connected.items():
            self._report.connected.setdefault(key, set()).update(seconds)
        for restaurant_id, gone in report.gone.items():
            self._report.gone.setdefault(restaurant_id, []).extend(gone)
