"""What the current request is, for log records and the query observer (a context variable,
so it follows the request from async middleware into the thread that runs a sync view)."""

from __future__ import annotations

import logging
import re
import uuid
from collections import Counter
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")


@dataclass
class RequestState:
    request_id: str
    queries: int = 0
    query_ms: float = 0.0
    exception: str = ""
    statements: Counter[str] = field(default_factory=Counter)  # sql template -> times run


current_request: ContextVar[RequestState | None] = ContextVar("opsite_request", default=None)


def request_id_from(header: str | None) -> str:
    """Keep a well-formed inbound id (from a proxy or the POS), else make one."""
    if header and VALID_REQUEST_ID.match(header):
        return header
    return uuid.uuid4().hex


def install_log_record_factory() -> None:
    """Every log record, whichever handler takes it, carries the current request's id."""
    make_record = logging.getLogRecordFactory()
    if getattr(make_record, "opsite_request_id", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        state = current_request.get()
        record.request_id = state.request_id if state is not None else "-"
        return record

    factory.opsite_request_id = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)
