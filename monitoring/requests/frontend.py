"""Validation of the reports the POS apps send: screen timings and errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.conf import settings

from common.labels import LabelBudget
from common.validation import clean_batch, string_field

MAX_METRICS = 100
MAX_ERRORS = 50


# The distinct screen/action pairs each restaurant may add to the statistics.
SCREENS = LabelBudget("frontend-screens", lambda: settings.OPSITE_FRONTEND_MAX_SCREENS)

Report = dict[str, Any]


def _report(
    clean_fields: Callable[[dict[str, Any], dict[str, str]], Report],
) -> Callable[[Any], tuple[Report | None, dict[str, str]]]:
    def clean_one(raw: Any) -> tuple[Report | None, dict[str, str]]:
        if not isinstance(raw, dict):
            return None, {"": "must be a JSON object"}
        errors: dict[str, str] = {}
        report = clean_fields(raw, errors)
        return (None if errors else report), errors

    return clean_one


def _metric(raw: dict[str, Any], errors: dict[str, str]) -> Report:
    report: Report = {
        "screen": string_field(raw, "screen", 100, errors, required=True),
        "action": string_field(raw, "action", 100, errors, required=True),
        "device": string_field(raw, "device", 100, errors),
        "network": string_field(raw, "network", 32, errors),
    }
    duration = raw.get("duration_ms")
    if isinstance(duration, bool) or not isinstance(duration, (int, float)) or not 0 <= duration <= 600_000:
        errors["duration_ms"] = "required, a number of milliseconds from 0 to 600000"
    else:
        report["duration_ms"] = float(duration)
    return report


def _error(raw: dict[str, Any], errors: dict[str, str]) -> Report:
    report: Report = {
        "error_type": string_field(raw, "error_type", 200, errors, required=True),
        "message": string_field(raw, "message", 2000, errors, required=True),
        "stack": string_field(raw, "stack", 16_000, errors),
        "screen": string_field(raw, "screen", 200, errors),
        "app_version": string_field(raw, "app_version", 64, errors),
    }
    device = raw.get("device", {}) or {}
    if not isinstance(device, dict):
        errors["device"] = "must be a JSON object"
    elif len(json.dumps(device)) > 4096:
        errors["device"] = "at most 4 KB"
    report["device"] = device
    return report


def clean_metrics(payload: Any) -> tuple[list[Report], dict[str, str]]:
    cleaned, errors, _ = clean_batch(payload, limit=MAX_METRICS, noun="report", clean_one=_report(_metric))
    return cleaned, errors


def clean_errors(payload: Any) -> tuple[list[Report], dict[str, str]]:
    cleaned, errors, _ = clean_batch(payload, limit=MAX_ERRORS, noun="report", clean_one=_report(_error))
    return cleaned, errors
