"""The zone staff read times in on the admin and the dashboard: UTC unless they chose their own
(the ``opsite_tz`` cookie, set by the switch in the page header). The board ignores it: a
restaurant's board shows the restaurant's own zone."""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable
from functools import lru_cache

from django.http import HttpRequest, HttpResponse
from django.utils import timezone

COOKIE = "opsite_tz"


@lru_cache(maxsize=128)
def _zone(name: str) -> zoneinfo.ZoneInfo | None:
    """The zone called ``name``, or None (looked up once per name, not by listing every zone)."""
    try:
        return zoneinfo.ZoneInfo(name) if name else None
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None


def chosen_zone(request: HttpRequest) -> zoneinfo.ZoneInfo | None:
    """The zone the request's cookie names, when it is a real one."""
    return _zone(request.COOKIES.get(COOKIE, "")[:64])


class DisplayZoneMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        zone = chosen_zone(request)
        if zone is None:
            return self.get_response(request)
        timezone.activate(zone)
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()
