from __future__ import annotations

import zoneinfo
from collections.abc import Iterable
from datetime import datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.sessions.backends.base import SessionBase
from django.db.models import Count, Exists, Max, Min, OuterRef, QuerySet, Sum
from django.utils import timezone
from django.utils.crypto import constant_time_compare

from . import hub, presence
from .models import OrderEvent, Restaurant, StaffMembership
from .services.restaurants import TOKEN_PREFIX, token_hash


def restaurant_for_token(token: str) -> Restaurant | None:
    if not token.startswith(TOKEN_PREFIX) or len(token) > 128:
        return None
    # Looked up by its SHA-256: timing can reveal at most something about the hash of a 256-bit
    # random token, never the token, so no byte-by-byte comparison of secrets happens here.
    return Restaurant.objects.filter(ingest_token_hash=token_hash(token)).first()


def viewable_restaurants(user: Any) -> QuerySet[Restaurant]:
    """The restaurants ``user`` may view (the one place the rule is written): all of them for an
    active superuser, those they are staff of for other active users, none for anyone else."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return Restaurant.objects.none()
    if user.is_superuser:
        return Restaurant.objects.all()
    return Restaurant.objects.filter(Exists(StaffMembership.objects.filter(user_id=user.pk, restaurant=OuterRef("pk"))))


def user_can_view(user: Any, restaurant: Restaurant) -> bool:
    return viewable_restaurants(user).filter(pk=restaurant.pk).exists()


def restaurant_for_viewer(user: Any, slug: str) -> Restaurant | None:
    """The restaurant with this slug when ``user`` may view it, else None: one query, the
    membership checked in the same statement (a board's handshake, its page, its catch-up)."""
    return viewable_restaurants(user).filter(slug=slug).first()


def session_still_valid(*, session: SessionBase | None, user: Any) -> bool:
    """The socket's session still exists, still belongs to the user, and was made with the
    user's current password (Django's session auth hash: a password change ends it)."""
    if session is None or not session.session_key or user is None:
        return False
    store = session.__class__(session_key=session.session_key)
    if not store.exists(session.session_key) or str(store.get(SESSION_KEY)) != str(user.pk):
        return False
    stored_hash = store.get(HASH_SESSION_KEY)
    return isinstance(stored_hash, str) and constant_time_compare(stored_hash, user.get_session_auth_hash())


def fresh_user(user: Any) -> Any:
    """The user as the database has it now (active flag, password, permissions uncached)."""
    return get_user_model().objects.filter(pk=user.pk).first()


def restaurants_for_user(user: Any) -> list[Restaurant]:
    return list(viewable_restaurants(user))


def events_after(*, restaurant: Restaurant, after_seq: int, limit: int) -> list[OrderEvent]:
    return list(OrderEvent.objects.filter(restaurant=restaurant, seq__gt=after_seq).order_by("seq")[:limit])


def restaurant_day_start(restaurant: Restaurant, now: datetime | None = None) -> datetime:
    tz = zoneinfo.ZoneInfo(restaurant.timezone)
    local = (now or timezone.now()).astimezone(tz)
    return datetime.combine(local.date(), time.min, tzinfo=tz)


FINISHED = ("paid", "completed", "cancelled")


def board_orders_today(restaurant: Restaurant, now: datetime | None = None) -> list[dict[str, Any]]:
    """Today's orders, and yesterday's that are still open (a ticket opened before midnight stays
    on the kitchen's board until it is finished), each as its latest event, newest first;
    ``finished`` says whether it is paid, completed or cancelled, and amounts that name no
    currency take the restaurant's."""
    start = restaurant_day_start(restaurant, now)
    orders: dict[str, dict[str, Any]] = {}
    for e in OrderEvent.objects.filter(
        restaurant=restaurant, occurred_at__gte=start - timedelta(days=1), occurred_at__lt=start + timedelta(days=1)
    ).order_by("seq"):
        order = orders.setdefault(e.order_id, {"order_id": e.order_id, "table": "", "currency": restaurant.currency,
                                               "opened_at": e.occurred_at})  # fmt: skip
        # A later event may leave out what an earlier one said (a payment names no table).
        failed_payment = e.type == OrderEvent.Type.UPDATED and (e.data or {}).get("payment_status") == "failed"
        order.update(
            status="payment-failed" if failed_payment else e.type.split(".", 1)[1],
            seq=e.seq,
            total_amount=e.total_amount,
            items_count=e.items_count,
            occurred_at=e.occurred_at,
            table=e.table or order["table"],
            currency=e.currency or order["currency"],
        )
        order["finished"] = order["status"] in FINISHED
    shown = [o for o in orders.values() if o["occurred_at"] >= start or not o["finished"]]
    return sorted(shown, key=lambda o: o["seq"], reverse=True)


def order_totals(*, since: datetime, until: datetime | None = None) -> dict[str, dict[str, Any]]:
    """Per restaurant: orders opened, paid and cancelled, and revenue (paid totals) by payment method."""
    events = OrderEvent.objects.filter(occurred_at__gte=since)
    if until is not None:
        events = events.filter(occurred_at__lt=until)
    totals: dict[str, dict[str, Any]] = {}
    rows = (
        events.values("restaurant__slug", "type", "payment_method")
        .annotate(n=Count("id"), amount=Sum("total_amount"))
        .order_by()
    )
    for row in rows:
        entry = totals.setdefault(
            row["restaurant__slug"],
            {"orders": 0, "paid": 0, "cancelled": 0, "revenue": Decimal("0"), "revenue_by_payment_method": {}},
        )
        kind = row["type"]
        if kind == OrderEvent.Type.CREATED:
            entry["orders"] += row["n"]
        elif kind == OrderEvent.Type.CANCELLED:
            entry["cancelled"] += row["n"]
        elif kind == OrderEvent.Type.PAID:
            entry["paid"] += row["n"]
            entry["revenue"] += row["amount"]
            method = row["payment_method"] or "unknown"
            by_method = entry["revenue_by_payment_method"]
            by_method[method] = by_method.get(method, Decimal("0")) + row["amount"]
    return totals


def local_socket_count() -> int:
    """Staff sockets open in this process (every event loop of it), for its node report."""
    return hub.local_socket_count()


def presence_summary() -> dict[str, Any]:
    """Open staff sockets per node and per restaurant, over every live node."""
    return presence.presence_summary()


def restaurant_slugs(ids: Iterable[int] | None = None) -> dict[int, str]:
    """Slug by id, of the given restaurants (of all without ``ids``)."""
    restaurants = Restaurant.objects.all() if ids is None else Restaurant.objects.filter(pk__in=list(ids))
    return dict(restaurants.values_list("pk", "slug"))


def restaurant_names_and_currencies(ids: Iterable[int]) -> dict[int, tuple[str, str]]:
    """Slug and currency (ISO 4217, or "" when not set) by id, of the given restaurants."""
    rows = Restaurant.objects.filter(pk__in=list(ids)).values_list("pk", "slug", "currency")
    return {pk: (slug, currency) for pk, slug, currency in rows}


def restaurant_ids(slugs: Iterable[str]) -> dict[str, int]:
    return dict(Restaurant.objects.filter(slug__in=list(slugs)).values_list("slug", "pk"))


def events_between(start: datetime, end: datetime) -> QuerySet[OrderEvent]:
    """Every restaurant's order events that occurred in [start, end]."""
    return OrderEvent.objects.filter(occurred_at__gte=start, occurred_at__lte=end)


def newest_event_id() -> int | None:
    """Grows with every stored event: whether anything arrived since a cached answer."""
    return OrderEvent.objects.aggregate(at=Max("pk"))["at"]


TICKET_LOOKBACK = timedelta(hours=12)  # an order open longer than this is forgotten, not late
CLOSING_TYPES = (OrderEvent.Type.PAID, OrderEvent.Type.COMPLETED, OrderEvent.Type.CANCELLED)


def late_tickets(now: datetime | None = None) -> dict[str, dict[str, float]]:
    """Per restaurant: open orders (opened in the last 12 hours, no paid, completed or cancelled
    event yet) past the restaurant's expected time plus its late and very-late thresholds, and
    how far past the expected time the oldest open order is (seconds; 0 without open orders)."""
    now = now or timezone.now()
    recent = OrderEvent.objects.filter(occurred_at__gte=now - TICKET_LOOKBACK)
    opened = recent.values_list("restaurant_id", "order_id").annotate(at=Min("occurred_at")).order_by()
    closed = set(recent.filter(type__in=CLOSING_TYPES).values_list("restaurant_id", "order_id").distinct())
    restaurants = {r.pk: r for r in Restaurant.objects.only(
        "slug", "ticket_expected_s", "ticket_late_after_s", "ticket_very_late_after_s")}  # fmt: skip
    result = {r.slug: {"late": 0.0, "very_late": 0.0, "oldest_over_s": 0.0} for r in restaurants.values()}
    for restaurant_id, order_id, at in opened:
        restaurant = restaurants.get(restaurant_id)
        if restaurant is None or (restaurant_id, order_id) in closed:
            continue
        over = (now - at).total_seconds() - restaurant.ticket_expected_s
        figures = result[restaurant.slug]
        figures["oldest_over_s"] = max(figures["oldest_over_s"], over)
        figures["late"] += over > restaurant.ticket_late_after_s
        figures["very_late"] += over > restaurant.ticket_very_late_after_s
    return result


def service_minute(start: datetime) -> dict[int, dict[str, int]]:
    """Each restaurant's service levels over the minute from ``start``, by id: frames delivered
    (and late), boards' acks (and late), seconds open and seconds a board was connected while
    open. Restaurants neither open nor active that minute are left out."""
    tallies = presence.get_presence().service_minute(int(start.timestamp()) // 60)
    rows: dict[int, dict[str, int]] = {}
    for restaurant in Restaurant.objects.only("pk", "timezone", "opens_at", "closes_at"):
        counts = tallies.get(restaurant.pk, {})
        open_s = 60 if restaurant.open_at(start) else 0
        if not counts and not open_s:
            continue
        rows[restaurant.pk] = {
            "deliveries": counts.get("delivered", 0), "deliveries_late": counts.get("delivered_late", 0),
            "acks": counts.get("acked", 0), "acks_late": counts.get("acked_late", 0),
            "open_s": open_s, "connected_s": min(open_s, counts.get("connected_s", 0)),
        }  # fmt: skip
    return rows


def boards_of(slug: str, *, now: float | None = None) -> dict[str, Any] | None:
    """A restaurant's stream head and its boards connected now on any process, each with how far
    it is behind the stream and how long since its last frame (entries of a process that died
    are left out); None for an unknown slug."""
    restaurant = Restaurant.objects.filter(slug=slug).first()
    if restaurant is None:
        return None
    now = now or timezone.now().timestamp()
    fresh_s = 2 * settings.OPSITE_PRESENCE_TTL_S
    rows = []
    for state in presence.get_presence().boards(restaurant.pk):
        if now - float(state.get("seen_at", 0)) > fresh_s:
            continue
        last_frame_at = state.get("last_frame_at")
        age = None if last_frame_at is None else max(0.0, now - float(last_frame_at))
        rows.append({**state, "lag": max(0, restaurant.last_seq - int(state.get("last_seq") or 0)),
                     "last_frame_age_s": age,
                     "connected_for_s": max(0.0, now - float(state["connected_at"]))})  # fmt: skip
    rows.sort(key=lambda r: (r["user"], r["connected_at"]))
    return {"slug": restaurant.slug, "name": restaurant.name, "last_seq": restaurant.last_seq, "boards": rows,
            "opening_hours": f"{restaurant.opens_at:%H:%M}\u2013{restaurant.closes_at:%H:%M} {restaurant.timezone}"
            if restaurant.opens_at and restaurant.closes_at else "no opening hours set"}  # fmt: skip


def slo_objectives() -> dict[int, tuple[str, float | None, float | None]]:
    """Per restaurant id: its slug and its own delivery and connected objectives (None: the defaults)."""
    rows = Restaurant.objects.values_list("pk", "slug", "slo_delivery_objective", "slo_connected_objective")
    return {pk: (slug, delivery, connected) for pk, slug, delivery, connected in rows}
