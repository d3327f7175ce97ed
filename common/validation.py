"""Field helpers shared by the JSON APIs' validators."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

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


def json_value_problems(value: Any, *, max_depth: int = MAX_JSON_DEPTH, strings: bool = True) -> dict[str, str]:
    """What a database would refuse, or a reader choke on, anywhere in a parsed JSON body, by
    path (``[0].data.note``): nesting deeper than ``max_depth``, NaN or Infinity, a NUL
    character or an unpaired surrogate in any string or key (``strings=False`` when the body is
    known to hold neither: only the nesting is walked). Walked without recursion; a path is
    written out only for a problem."""
    problems: dict[str, str] = {}
    # (value, path as a chain of (parent, key) pairs, depth)
    stack: list[tuple[Any, Any, int]] = [(value, None, 0)]
    while stack and len(problems) < MAX_PROBLEMS:
        item, path, depth = stack.pop()
        if isinstance(item, str):
            problem = f"{item} is not a JSON number" if isinstance(item, NonFinite) else _string_problem(item)
            if problem:
                problems[_path_text(path)] = problem
            continue
        if not isinstance(item, dict | list):
            continue  # a number, true, false or null
        if depth >= max_depth:
            problems[_path_text(path)] = f"nested deeper than {max_depth} levels"
            continue
        children = item.items() if isinstance(item, dict) else enumerate(item)
        for key, child in children:
            if strings and isinstance(key, str):
                problem = _string_problem(key)
                if problem:
                    problems[_path_text((path, key))] = f"the key {problem}"
                    continue
            if isinstance(child, dict | list) or (strings and isinstance(child, str)) or isinstance(child, NonFinite):
                stack.append((child, (path, key), depth + 1))
    return problems


def _path_text(path: Any) -> str:
    keys = []
    while path is not None:
        path, key = path
        keys.append(key)
    text = "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in reversed(keys)).lstrip(".")
    return text or "(body)"


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


def clean_batch(
    payload: Any, *, limit: int, noun: str, clean_one: Callable[[Any], tuple[T | None, dict[str, str]]]
) -> tuple[list[T], dict[str, str], bool]:
    """One item, or a list of 1 to ``limit``, each cleaned by ``clean_one`` (the item, or None
    and its errors by field). Errors are named by field, after ``[index].`` in a list
    (``[index]`` alone for the item as a whole). Returns the clean items, every error, and
    whether a list was sent; a list that is empty or too long is a ValueError."""
    is_batch = isinstance(payload, list)
    items = payload if is_batch else [payload]
    if not items:
        raise ValueError(f"an empty list: send one {noun} or a list of 1 to {limit}")
    if len(items) > limit:
        raise ValueError(f"at most {limit} {noun}s in one request")
    cleaned: list[T] = []
    errors: dict[str, str] = {}
    for index, raw in enumerate(items):
        item, problems = clean_one(raw)
        prefix = f"[{index}]." if is_batch else ""
        errors.update({f"{prefix}{name}".rstrip("."): message for name, message in problems.items()})
        if item is not None and not problems:
            cleaned.append(item)
    return cleaned, errors, is_batch
