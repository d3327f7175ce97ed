"""The zone staff read times in on the admin and the dashboard: UTC unless they chose their own
(the ``opsite_tz`` cookie, set by the switch in the page header). The board ignores it: a
restaurant's board shows the restaurant's own zone."""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable
from functools import cache

from django.http import HttpRequest, HttpResponse
from django.utils import timezone

COOKIE = "opsite_tz"


@cache
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def chosen_zone(request: HttpRequest) -> str | None:
    """The zone the request's cookie names, when it is a real one."""
    name = request.COOKIES.get(COOKIE, "")
    return name if name in _zones() else None


class DisplayZoneMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        zone = chosen_zone(request)
        if zone is None:
            return self.get_response(request)
        timezone.activate(zoneinfo.ZoneInfo(zone))
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()
