from __future__ import annotations

import logging
from typing import Any

from django.db import transaction

from common.aio import group_send_sync

log = logging.getLogger(__name__)
OPS_GROUP = "ops"  # every open ops dashboard (ws/ops/) listens here


def ops_event_publish(*, frame: dict[str, Any]) -> None:
    """Push a frame to every open dashboard after the transaction commits; a dashboard that
    misses it still sees the change on its next refresh, so a failure is only logged."""

    def send() -> None:
        try:
            group_send_sync(OPS_GROUP, {"type": "ops.event", "frame": frame})
        except Exception as exc:
            log.warning("could not push %s to the dashboards: %s", frame.get("type"), exc)

    transaction.on_commit(send)


def ops_access_revoked_publish(*, user_id: int, session_key: str | None) -> None:
    """Close a logged-out user's dashboards on every node (each also re-checks on a timer)."""
    try:
        group_send_sync(OPS_GROUP, {"type": "ops.revoke", "user_id": user_id, "session_key": session_key})
    except Exception as exc:
        log.warning("could not tell the dashboards of user %s to close: %s", user_id, exc)
