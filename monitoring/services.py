from __future__ import annotations

import hashlib
import logging
import re
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from common.aio import group_send_sync
from monitoring.models import FrontendErrorGroup, Heartbeat

log = logging.getLogger(__name__)
_DIGITS = re.compile(r"\d+")


def heartbeat_record(*, name: str) -> None:
    Heartbeat.objects.update_or_create(name=name, defaults={"at": timezone.now(), "node": settings.OPSITE_NODE_NAME})


def frontend_error_fingerprint(error_type: str, message: str, stack: str) -> str:
    # Numbers (ids, line offsets in minified code) vary between occurrences of one error.
    top = "\n".join(stack.strip().splitlines()[:3])
    basis = "|".join([error_type, _DIGITS.sub("#", message)[:300], _DIGITS.sub("#", top)])
    return hashlib.sha1(basis.encode(), usedforsecurity=False).hexdigest()


def frontend_error_record(*, report: dict[str, Any], restaurant: Any) -> FrontendErrorGroup:
    from monitoring.requests.traffic import FRONTEND_ERRORS, get_recorder

    fp = frontend_error_fingerprint(report["error_type"], report["message"], report.get("stack", ""))
    get_recorder(FRONTEND_ERRORS).record(restaurant.slug if restaurant else "-", 0.0, 500)  # the error rate
    now = timezone.now()
    for _ in range(2):
        updated = FrontendErrorGroup.objects.filter(fingerprint=fp).update(count=F("count") + 1, last_seen=now)
        if updated:
            return FrontendErrorGroup.objects.get(fingerprint=fp)
        try:
            with transaction.atomic():
                return FrontendErrorGroup.objects.create(
                    fingerprint=fp, error_type=report["error_type"], message=report["message"],
                    screen=report.get("screen", ""), app_version=report.get("app_version", ""), count=1,
                    first_seen=now, last_seen=now, sample_stack=report.get("stack", ""),
                    sample_device=report.get("device", {}), restaurant=restaurant,
                )  # fmt: skip
        except IntegrityError:
            continue  # another process created it first: count on it
    raise RuntimeError("could not record the frontend error")


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
