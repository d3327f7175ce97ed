"""When this process started, for the uptime in /health."""

from __future__ import annotations

import time

STARTED_AT = time.time()


def uptime_seconds() -> float:
    return time.time() - STARTED_AT
