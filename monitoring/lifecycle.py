"""Process start time and the shutting-down flag that readiness reports."""

from __future__ import annotations

import time

STARTED_AT = time.time()
_shutting_down = False


def mark_shutting_down() -> None:
    global _shutting_down
    _shutting_down = True


def shutting_down() -> bool:
    return _shutting_down


def uptime_seconds() -> float:
    return time.time() - STARTED_AT
