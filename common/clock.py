"""Time arithmetic shared by the snapshots, the dashboard and the run ledger."""

from __future__ import annotations

from datetime import datetime


def floor_to(at: datetime, seconds: int) -> datetime:
    """The start of the ``seconds``-long period, counted from the epoch, that holds ``at``."""
    return datetime.fromtimestamp(int(at.timestamp()) // seconds * seconds, tz=at.tzinfo)
