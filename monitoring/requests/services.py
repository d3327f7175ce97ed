from __future__ import annotations

import hashlib
import re
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from monitoring.requests.models import FrontendErrorGroup
from monitoring.requests.traffic import FRONTEND_ERRORS, get_recorder

_DIGITS = re.compile(r"\d+")


def frontend_error_fingerprint(error_type: str, message: str, stack: str) -> str:
    # Numbers (ids, line offsets in minified code) vary between occurrences of one error.
    top = "\n".join(stack.strip().splitlines()[:3])
    basis = "|".join([error_type, _DIGITS.sub("#", message)[:300], _DIGITS.sub("#", top)])
    return hashlib.sha1(basis.encode(), usedforsecurity=False).hexdigest()


def frontend_error_record(*, report: dict[str, Any], restaurant: Any) -> FrontendErrorGroup:
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
