"""W3C trace context (``traceparent``): read from a request or a task message, made when
absent or malformed (never refused), and written back on responses, task messages, log lines
and, as a sqlcommenter-style comment, on every SQL statement of the request.

    traceparent: 00-<trace id: 32 hex>-<parent span id: 16 hex>-<flags: 2 hex>
"""

from __future__ import annotations

import random
import re
from urllib.parse import quote

HEADER = "traceparent"
_FORMAT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16


def new_trace_id() -> str:
    # random's generator is reseeded in every forked child, so workers never repeat each other.
    return f"{random.getrandbits(128):032x}"


def new_span_id() -> str:
    return f"{random.getrandbits(64):016x}"


def parse(header: str | None) -> tuple[str, str, str] | None:
    """(trace id, parent span id, flags) of a valid header, else None.

    Version 00 must be exactly four fields; a later version may append fields after a dash
    (the specification's forward compatibility); version ff and all-zero ids are invalid."""
    if not header or len(header) > 512:
        return None
    found = _FORMAT.match(header.strip())
    if found is None:
        return None
    version, trace_id, span_id, flags, rest = found.groups()
    if version == "ff" or (version == "00" and rest) or trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    return trace_id, span_id, flags


class TraceContext:
    """This process's span inside a trace: the inbound trace id kept, a span id of its own."""

    __slots__ = ("_comment", "flags", "parent_id", "span_id", "trace_id")

    def __init__(self, trace_id: str, parent_id: str, flags: str) -> None:
        self.trace_id = trace_id
        self.parent_id = parent_id
        self.span_id = new_span_id()
        self.flags = flags
        self._comment = ""

    @classmethod
    def from_header(cls, header: str | None) -> TraceContext:
        """Continue the caller's trace, or start one when the header is absent or malformed."""
        found = parse(header)
        if found is None:
            return cls(new_trace_id(), "", "01")
        return cls(*found)

    @property
    def traceparent(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"

    def sql_comment(self) -> str:
        # sqlcommenter: key='url-encoded value' pairs, sorted, in one trailing comment; made
        # once per request, whose every statement carries it.
        if not self._comment:
            self._comment = f" /*traceparent='{quote(self.traceparent, safe='')}'*/"
        return self._comment
