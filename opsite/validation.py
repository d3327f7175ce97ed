"""Field helpers shared by the JSON APIs' validators."""

from __future__ import annotations

import re
from typing import Any

MAX_JSON_DEPTH = 32
_COUNT = re.compile(r"[0-9]{1,18}")  # ASCII digits only ("²".isdigit() is true), within a bigint
MAX_PROBLEMS = 20


class NonFinite(str):
    """NaN, Infinity or an overflowing number in a JSON body: Python's parser takes them, JSON
    has no such values, and the database refuses them; kept as a marker so the error names the
    field."""


def _string_problem(value: str) -> str | None:
    if "\x00" in value:
        return "contains a NUL character"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "contains an unpaired surrogate (not valid Unicode)"
    return None


def json_value_problems(value: Any, *, max_depth: int = MAX_JSON_DEPTH) -> dict[str, str]:
    """What a database would refuse, or a reader choke on, anywhere in a parsed JSON body, by
    path (``[0].data.note``): nesting deeper than ``max_depth``, a NUL character or an unpaired
    surrogate in any string or key. Walked without recursion."""
    problems: dict[str, str] = {}
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack and len(problems) < MAX_PROBLEMS:
        item, path, depth = stack.pop()
        if isinstance(item, NonFinite):
            problems[path or "(body)"] = f"{item} is not a JSON number"
        elif isinstance(item, str):
            problem = _string_problem(item)
            if problem:
                problems[path or "(body)"] = problem
        elif isinstance(item, dict | list):
            if depth >= max_depth:
                problems[path or "(body)"] = f"nested deeper than {max_depth} levels"
                continue
            if isinstance(item, list):
                stack.extend((child, f"{path}[{i}]", depth + 1) for i, child in enumerate(item))
                continue
            for key, child in item.items():
                where = f"{path}.{key}" if path else str(key)
                problem = _string_problem(key)
                if problem:
                    problems[where] = f"the key {problem}"
                else:
                    stack.append((child, where, depth + 1))
    return problems


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


def non_negative_int(raw: str) -> int | None:
    """A query parameter such as a sequence number or a limit; None when it is not one."""
    return int(raw) if _COUNT.fullmatch(raw) else None
