"""Validation of the reports the POS apps send: screen timings and errors.

Two shapes are accepted for each. Today's: a report object or a list of them, with the field
names below. The mobile clients' (their error boundary and performance monitor): timings as
``{"metrics": [...], "device_info": {...}}``, each metric naming its screen (``screen``,
``screen_name``, ``endpoint`` or ``name``), what was timed (``action``, ``type``, ``metric``
or ``name``) and its milliseconds (``duration_ms``, ``duration`` or ``value``), the batch's
``device_info`` standing for each metric's device; errors without ``error_type``, which is
then read from ``error`` or ``name`` or the first line of the message or stack
(``TypeError: ...``; plain ``Error`` otherwise), ``componentStack`` standing for the stack and
``device_info`` for the device. Both become the same reports."""

from __future__ import annotations

import json
import re
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


def _first(raw: dict[str, Any], *names: str) -> Any:
    return next((raw[name] for name in names if raw.get(name) not in (None, "")), None)


def _device_label(info: Any) -> str | None:
    """A short label for a device described as an object (the mobile clients' ``device_info``)."""
    if not isinstance(info, dict):
        return None
    parts = [str(info[k]) for k in ("platform", "os", "model", "os_version", "version") if info.get(k)]
    return " ".join(parts)[:100] or None


def _plan_metric(raw: Any, device_info: Any) -> Any:
    if not isinstance(raw, dict):
        return raw
    mapped = {
        "screen": _first(raw, "screen", "screen_name", "endpoint", "name"),
        "action": _first(raw, "action", "type", "metric", "name"),
        "duration_ms": _first(raw, "duration_ms", "duration", "value"),
        "device": _first(raw, "device") or _device_label(device_info),
        "network": _first(raw, "network") or (device_info.get("network") if isinstance(device_info, dict) else None),
    }
    return {k: v for k, v in mapped.items() if v is not None}


def metrics_of(payload: Any) -> Any:
    """Today's shape of a timings body: the mobile clients' ``{"metrics": [...]}`` unwrapped."""
    if isinstance(payload, dict) and "metrics" in payload and "screen" not in payload:
        items = payload["metrics"]
        if not isinstance(items, list):
            return {"metrics": items}  # fails validation as it stands
        return [_plan_metric(item, payload.get("device_info")) for item in items]
    return payload


_ERROR_NAME = re.compile(r"^\s*(?:Uncaught\s+)?([A-Za-z_$][\w$.]{0,199}?(?:Error|Exception))\b")


def _error_type(raw: dict[str, Any]) -> str:
    for text in (raw.get("error"), raw.get("name"), raw.get("message"), raw.get("stack")):
        if isinstance(text, str) and (found := _ERROR_NAME.match(text)):
            return found.group(1)
    return "Error"


def _plan_error(raw: Any) -> Any:
    if not isinstance(raw, dict) or "error_type" in raw:
        return raw
    mapped = dict(raw)
    mapped["error_type"] = _error_type(raw)
    if not mapped.get("message") and isinstance(raw.get("error"), str):
        mapped["message"] = raw["error"]
    if not mapped.get("stack") and isinstance(raw.get("componentStack"), str):
        mapped["stack"] = raw["componentStack"]
    if "device" not in mapped and isinstance(raw.get("device_info"), dict):
        mapped["device"] = raw["device_info"]
    for extra in ("error", "name", "componentStack", "device_info"):
        mapped.pop(extra, None)
    return mapped


def errors_of(payload: Any) -> Any:
    """Today's shape of an error body: reports without ``error_type`` completed."""
    if isinstance(payload, list):
        return [_plan_error(item) for item in payload]
    return _plan_error(payload)


def clean_metrics(payload: Any) -> tuple[list[Report], dict[str, str]]:
    cleaned, errors, _ = clean_batch(metrics_of(payload), limit=MAX_METRICS, noun="report",
                                     clean_one=_report(_metric))  # fmt: skip
    return cleaned, errors


def clean_errors(payload: Any) -> tuple[list[Report], dict[str, str]]:
    cleaned, errors, _ = clean_batch(errors_of(payload), limit=MAX_ERRORS, noun="report", clean_one=_report(_error))
    return cleaned, errors
