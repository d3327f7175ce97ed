"""What the current request is, for log records and the query observer (a context variable,
so it follows the request from async middleware into the thread that runs a sync view)."""

from __future__ import annotations

import itertools
import logging
import os
import re
from contextvars import ContextVar
from typing import Any

from .tracing import HEADER, TraceContext

VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")


class RequestState:
    """One request as the monitoring sees it; made on every request, so kept minimal."""

    __slots__ = ("exception", "queries", "query_ms", "request_id", "statements", "trace", "wrote")

    def __init__(self, request_id: str, trace: TraceContext | None = None) -> None:
        self.request_id = request_id
        self.trace = trace
        self.queries = 0
        self.query_ms = 0.0
        self.exception = ""
        self.statements: dict[str, list[float]] | None = None  # sql -> [times run, ms], once a query ran
        self.wrote = False  # a write was routed to the primary: later reads stay there

    def count_statement(self, sql: str, ms: float) -> None:
        self.queries += 1
        self.query_ms += ms
        if self.statements is None:
            self.statements = {}
        tally = self.statements.get(sql)
        if tally is None:
            self.statements[sql] = [1, ms]
        else:
            tally[0] += 1
            tally[1] += ms

    @property
    def trace_id(self) -> str:
        return self.trace.trace_id if self.trace is not None else ""


current_request: ContextVar[RequestState | None] = ContextVar("opsite_request", default=None)


# A new id is a random per-process prefix and a counter: unique across processes and hosts,
# and far cheaper than asking the kernel for randomness on every request.
_id_prefix = ""
_id_counter = itertools.count()


def _new_id_space() -> None:
    global _id_prefix, _id_counter
    _id_prefix = os.urandom(8).hex()
    _id_counter = itertools.count()


_new_id_space()
os.register_at_fork(after_in_child=_new_id_space)


def request_id_from(header: str | None) -> str:
    """Keep a well-formed inbound id (from a proxy or the POS), else make one."""
    if header and VALID_REQUEST_ID.match(header):
        return header
    return f"{_id_prefix}{next(_id_counter):016x}"


def install_log_record_factory() -> None:
    """Every log record, whichever handler takes it, carries the current request's id and trace id."""
    make_record = logging.getLogRecordFactory()
    if getattr(make_record, "opsite_request_id", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        state = current_request.get()
        if state is None:
            record.request_id = record.trace_id = "-"
        else:
            record.request_id = state.request_id
            record.trace_id = state.trace.trace_id if state.trace is not None else "-"
        return record

    factory.opsite_request_id = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


def comment_sql(execute: Any, sql: str, params: Any, many: bool, context: dict[str, Any]) -> Any:
    """An execute wrapper (installed innermost): the statement carries its request's trace, so
    the database log and ``pg_stat_statements`` tie a slow statement to its request.

    psycopg parses each distinct statement text for its placeholders once and caches the
    result; a comment that differs per request would make every statement a new text to parse.
    So with a client-side binding cursor the values are bound first (what that cursor does
    anyway, from the cached parse) and the comment is added to the bound statement."""
    state = current_request.get()
    if state is None or state.trace is None or not isinstance(sql, str):
        return execute(sql, params, many, context)
    comment = state.trace.sql_comment()
    if params is not None and not many:
        mogrify = getattr(getattr(context.get("cursor"), "cursor", None), "mogrify", None)
        if mogrify is not None:
            return execute(mogrify(sql, params) + comment, None, many, context)
    return execute(sql + comment, params, many, context)


def stamp_task_message(headers: dict[str, Any] | None = None, **_: Any) -> None:
    """``before_task_publish``: a task sent from a request or a task continues its trace."""
    state = current_request.get()
    if headers is not None and state is not None and state.trace is not None:
        headers.setdefault(HEADER, state.trace.traceparent)
