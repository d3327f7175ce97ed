"""Small pieces shared by the JSON APIs."""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpRequest, JsonResponse


class ApiError(Exception):
    def __init__(self, status: int, error: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.error, self.message, self.extra = status, error, message, extra

    def response(self) -> JsonResponse:
        response = JsonResponse({"error": self.error, "message": self.message, **self.extra}, status=self.status)
        if "retry_after" in self.extra:
            response["Retry-After"] = str(self.extra["retry_after"])
        return response


def bearer_token(request: HttpRequest) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def read_json_body(request: HttpRequest, *, max_bytes: int) -> Any:
    """The request's JSON body, or an ApiError for 413 / 415 / 400."""
    content_type = request.content_type or ""
    if content_type != "application/json" and not content_type.endswith("+json"):
        raise ApiError(415, "unsupported_media_type", "send Content-Type: application/json")
    declared = request.META.get("CONTENT_LENGTH") or "0"
    if declared.isdigit() and int(declared) > max_bytes:
        raise ApiError(413, "too_large", f"the body is limited to {max_bytes} bytes")
    body = request.read(max_bytes + 1)
    if len(body) > max_bytes:
        raise ApiError(413, "too_large", f"the body is limited to {max_bytes} bytes")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "bad_json", f"the body is not valid JSON: {exc}") from exc
