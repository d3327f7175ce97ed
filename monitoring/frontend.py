"""Validation of the reports the POS apps send: screen timings and errors."""

from __future__ import annotations

import json
from typing import Any

MAX_METRICS = 100
MAX_ERRORS = 50


def _string(raw: dict[str, Any], name: str, max_len: int, errors: dict[str, str], *, required: bool = False) -> str:
    value = raw.get(name)
    if value is None or value == "":
        if required:
            errors[name] = "required"
        return ""
    if not isinstance(value, str):
        errors[name] = "must be a string"
        return ""
    if len(value) > max_len:
        errors[name] = f"at most {max_len} characters"
    return value


def _items(payload: Any, limit: int) -> tuple[list[Any], bool]:
    is_batch = isinstance(payload, list)
    items = payload if is_batch else [payload]
    if not items or len(items) > limit:
        raise ValueError(f"send one report or a list of 1 to {limit}")
    return items, is_batch


def clean_metrics(payload: Any) -> tuple[list[dict[str, Any]], dict[str, str]]:
    items, is_batch = _items(payload, MAX_METRICS)
    cleaned, all_errors = [], {}
    for index, raw in enumerate(items):
        errors: dict[str, str] = {}
        if not isinstance(raw, dict):
            all_errors[f"[{index}]" if is_batch else ""] = "must be a JSON object"
            continue
        screen = _string(raw, "screen", 100, errors, required=True)
        action = _string(raw, "action", 100, errors, required=True)
        device = _string(raw, "device", 100, errors)
        network = _string(raw, "network", 32, errors)
        duration = raw.get("duration_ms")
        if isinstance(duration, bool) or not isinstance(duration, (int, float)) or not 0 <= duration <= 600_000:
            errors["duration_ms"] = "required, a number of milliseconds from 0 to 600000"
            duration = 0
        prefix = f"[{index}]." if is_batch else ""
        all_errors.update({prefix + k: v for k, v in errors.items()})
        if not errors:
            cleaned.append({"screen": screen, "action": action, "duration_ms": float(duration),
                            "device": device, "network": network})  # fmt: skip
    return cleaned, all_errors


def clean_errors(payload: Any) -> tuple[list[dict[str, Any]], dict[str, str]]:
    items, is_batch = _items(payload, MAX_ERRORS)
    cleaned, all_errors = [], {}
    for index, raw in enumerate(items):
        errors: dict[str, str] = {}
        if not isinstance(raw, dict):
            all_errors[f"[{index}]" if is_batch else ""] = "must be a JSON object"
            continue
        report: dict[str, Any] = {
            "error_type": _string(raw, "error_type", 200, errors, required=True),
            "message": _string(raw, "message", 2000, errors, required=True),
            "stack": _string(raw, "stack", 16_000, errors),
            "screen": _string(raw, "screen", 200, errors),
            "app_version": _string(raw, "app_version", 64, errors),
        }
        device = raw.get("device", {}) or {}
        if not isinstance(device, dict):
            errors["device"] = "must be a JSON object"
        elif len(json.dumps(device)) > 4096:
            errors["device"] = "at most 4 KB"
        report["device"] = device
        prefix = f"[{index}]." if is_batch else ""
        all_errors.update({prefix + k: v for k, v in errors.items()})
        if not errors:
            cleaned.append(report)
    return cleaned, all_errors
