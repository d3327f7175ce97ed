"""Field helpers shared by the JSON APIs' validators."""

from __future__ import annotations

from typing import Any


def string_field(
    raw: dict[str, Any], name: str, max_len: int, errors: dict[str, str], *, required: bool = False
) -> str:
    """The string at ``raw[name]`` ("" when absent); a problem goes into ``errors[name]``."""
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
