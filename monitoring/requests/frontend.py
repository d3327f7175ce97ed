"""Validation of the reports the POS apps send: screen timings and errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.conf import settings

from common.labels import LabelBudget
from common.validation import string_field

MAX_METRICS = 100
MAX_ERRORS = 50


# The distinct screen/action pairs each restaurant may add to the statistics.
SCREENS = LabelBudget("frontend-screens", lambda: settings.OPSITE_FRONTEND_MAX_SCREENS)

Report = dict[str, Any]


def _clean_batch(
    payload: Any, limit: int, clean_one: Callable[[dict[str, Any], dict[str, str]], Report]
) -> tuple[list[Report], dict[str, str]]:
    """One report or a list of up to ``limit``; field errors are named ``[index].field`` in a list."""
    is_batch = isinstance(payload, list)
    items = payload if is_batch else [payload]
    if not items or len(items) > limit:
        raise ValueError(f"send one report or a list of 1 to {limit}")
    cleaned: list[Report] = []
    all_errors: dict[str, str] = {}
    for index, raw in enumerate(items):
        prefix = f"[{index}]." if is_batch else ""
        if not isinstance(raw, dict):
            all_errors[prefix.rstrip(".")] = "must be a JSON object"
            continue
        errors: dict[str, str] = {}
        report = clean_one(raw, errors)
        all_errors.update({prefix + k: v for k, v in errors.items()})
        if not errors:
            cleaned.append(report)
    return cleaned, all_errors


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
    return _clean_batch(payload, MAX_METRICS, _metric)


def clean_errors(payload: Any) -> tuple[list[Report], dict[str, str]]:
    return _clean_batch(payload, MAX_ERRORS, _error)
