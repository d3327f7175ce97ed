"""Machine access for the POS: a restaurant's ingest token, with a per-token rate limit."""

from __future__ import annotations

from django.http import HttpRequest

from common import ratelimit
from common.http import ApiError, bearer_token

from .models import Restaurant
from .selectors import restaurant_for_token


def restaurant_from_request(request: HttpRequest, *, scope: str, per_minute: int) -> Restaurant:
    """The restaurant whose ingest token authorises this request, or an ApiError (401 / 429)."""
    token = bearer_token(request)
    restaurant = restaurant_for_token(token) if token else None
    if restaurant is None:
        raise ApiError(401, "unauthorized", "send Authorization: Bearer <restaurant ingest token>")
    allowed, retry_after = ratelimit.hit(scope=scope, ident=str(restaurant.pk), limit=per_minute)
    if not allowed:
        raise ApiError(429, "rate_limited", f"too many requests; retry in {retry_after} s", retry_after=retry_after)
    return restaurant
