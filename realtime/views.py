from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from common.context import current_request
from common.http import ApiError, read_json_body
from common.validation import non_negative_int

from . import selectors
from .auth import restaurant_from_request
from .frames import event_payload
from .services import order_event_ingest
from .stream import stream_head
from .validation import InvalidEvents, clean_events

CATCH_UP_MAX = 1000


@csrf_exempt
@require_POST
def order_events_ingest(request: HttpRequest) -> JsonResponse:
    try:
        restaurant = restaurant_from_request(request, scope="ingest", per_minute=settings.OPSITE_INGEST_RATE_PER_MINUTE)
        payload = read_json_body(request, max_bytes=settings.OPSITE_INGEST_MAX_BODY_BYTES)
        try:
            events, is_batch = clean_events(payload, max_batch=settings.OPSITE_INGEST_MAX_BATCH)
        except InvalidEvents as exc:
            raise ApiError(400, "invalid", "some fields are invalid", fields=exc.fields) from exc
    except ApiError as exc:
        return exc.response()
    state = current_request.get()
    result = order_event_ingest(
        restaurant=restaurant, events=events, trace_id=state.trace_id if state else "",
        request_id=state.request_id if state else "",
    )  # fmt: skip
    status = 201 if result.any_created else 200
    body = result.answers if is_batch else result.answers[0]
    return JsonResponse(body, status=status, safe=False)


def _int_param(request: HttpRequest, name: str, default: int, maximum: int | None = None) -> int:
    raw = request.GET.get(name)
    if raw is None:
        return default
    value = non_negative_int(raw)
    if value is None:
        raise ApiError(400, "invalid", f"{name} must be a non-negative integer of at most 18 digits")
    return min(value, maximum) if maximum is not None else value


@require_GET
def order_events_catch_up(request: HttpRequest, slug: str) -> JsonResponse:
    if not request.user.is_authenticated:
        return ApiError(401, "unauthorized", "log in first").response()
    restaurant = selectors.restaurant_for_viewer(request.user, slug)
    if restaurant is None:
        return ApiError(403, "forbidden", "you are not staff of this restaurant").response()
    try:
        after_seq = _int_param(request, "after_seq", 0)
        limit = max(1, _int_param(request, "limit", 200, CATCH_UP_MAX))
    except ApiError as exc:
        return exc.response()
    events = selectors.events_after(restaurant=restaurant, after_seq=after_seq, limit=limit)
    head_seq, epoch = stream_head(restaurant.pk)
    return JsonResponse(
        {
            "restaurant": restaurant.slug,
            "epoch": epoch,
            "seq": head_seq,
            "events": [event_payload(e, restaurant.slug) for e in events],
            "has_more": bool(events) and events[-1].seq < head_seq,
        }
    )


@login_required
def order_board(request: HttpRequest, slug: str) -> HttpResponse:
    restaurant = selectors.restaurant_for_viewer(request.user, slug)
    if restaurant is None:
        raise Http404("no such restaurant")
    head_seq, epoch = stream_head(restaurant.pk)
    orders = selectors.board_orders_today(restaurant)
    context = {
        "restaurant": restaurant,
        "orders": orders,
        "open_orders": [o for o in orders if not o["finished"]],
        "finished_orders": [o for o in orders if o["finished"]],
        "finished_visible_s": settings.OPSITE_BOARD_FINISHED_VISIBLE_S,
        "head_seq": head_seq,
        "epoch": epoch,
    }
    return render(request, "realtime/board.html", context)


@login_required
def restaurant_index(request: HttpRequest) -> HttpResponse:
    return render(request, "realtime/index.html", {"restaurants": selectors.restaurants_for_user(request.user)})
