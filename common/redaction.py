"""Secrets out of what is shown: URLs lose their credentials, error pages their secrets."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from django.views.debug import SafeExceptionReporterFilter

MASK = "********"
SECRET_NAME = re.compile(r"key|token|secret|pass|pwd|auth|sig|credential|session", re.IGNORECASE)


def redact_url(url: str) -> str:
    """The URL without its password (the user name stays) and with secret-looking query values
    masked: ``http://svc:S3cret@host/h?api_key=x&v=1`` → ``http://svc:********@host/h?api_key=********&v=1``."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return MASK
    netloc = parts.netloc
    if "@" in netloc:
        user = parts.username or ""
        port = f":{parts.port}" if parts.port else ""
        netloc = f"{user}:{MASK}@{host}{port}" if parts.password is not None else f"{user}@{host}{port}"
    query = urlencode(
        [(name, MASK if SECRET_NAME.search(name) else value) for name, value in parse_qsl(parts.query, True)],
        safe="*",
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


class ReporterFilter(SafeExceptionReporterFilter):
    """Django hides settings named like secrets; a URL setting (DATABASE_URL, CELERY_BROKER_URL,
    EMAIL_URL...) carries its password inside, so any setting value that is a URL with
    credentials is shown redacted too."""

    def cleanse_setting(self, key: Any, value: Any) -> Any:
        cleansed = super().cleanse_setting(key, value)
        if isinstance(cleansed, str) and "://" in cleansed and "@" in cleansed:
            return redact_url(cleansed)
        if isinstance(cleansed, list | tuple) and any(isinstance(v, str) and "://" in v for v in cleansed):
            return type(cleansed)(redact_url(v) if isinstance(v, str) and "@" in v else v for v in cleansed)
        return cleansed
