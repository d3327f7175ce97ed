"""Demo data for a first look: restaurants, staff, an admin and a day of orders."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.utils import timezone

from ..models import Restaurant
from ..validation import CleanEvent
from .ingest import order_event_ingest
from .restaurants import restaurant_create, staff_add

DEMO_RESTAURANTS = [("trattoria", "Trattoria Roma", "Europe/Rome"), ("noodle-bar", "Noodle Bar", "Asia/Tokyo")]
DEMO_PASSWORD = "opsite-demo"  # noqa: S105  (demo data; refused outside DEBUG unless forced)


@dataclass
class DemoLogin:
    username: str
    password: str
    what: str


def _history(restaurant: Restaurant, orders: int, rng: random.Random) -> None:
    now = timezone.now()
    events: list[CleanEvent] = []
    for n in range(orders):
        order_id = f"{restaurant.slug[:3].upper()}-{n + 1:04d}"
        at = now - timedelta(minutes=rng.randint(1, 600))
        amount = Decimal(rng.randint(800, 9000)) / 100
        items = rng.randint(1, 8)
        table = str(rng.randint(1, 30))
        events.append(CleanEvent("order.created", order_id, amount, items, at, table=table, currency="EUR"))
        if rng.random() < 0.8:
            method = rng.choice(["card", "cash", "mobile"])
            events.append(
                CleanEvent("order.paid", order_id, amount, items, at + timedelta(minutes=20), table=table,
                           currency="EUR", payment_method=method)
            )  # fmt: skip
    events.sort(key=lambda e: e.occurred_at)
    order_event_ingest(restaurant=restaurant, events=events)


def demo_seed(*, orders_per_restaurant: int = 40, seed: int = 7) -> list[DemoLogin]:
    rng = random.Random(seed)
    logins: list[DemoLogin] = []
    user_model = get_user_model()
    if not user_model.objects.filter(username="admin").exists():
        user_model.objects.create_superuser("admin", "admin@example.com", DEMO_PASSWORD)
    logins.append(DemoLogin("admin", DEMO_PASSWORD, "superuser: /admin/, /ops/, every board"))
    for slug, name, tz in DEMO_RESTAURANTS:
        restaurant = Restaurant.objects.filter(slug=slug).first()
        token = None
        if restaurant is None:
            restaurant, token = restaurant_create(slug=slug, name=name, timezone=tz)
            _history(restaurant, orders_per_restaurant, rng)
        username = f"{slug.replace('-', '')}-staff"
        staff_add(slug=slug, username=username, password=DEMO_PASSWORD)
        what = f"staff of {slug}: /restaurants/{slug}/"
        if token:
            what += f" (ingest token {token})"
        logins.append(DemoLogin(username, DEMO_PASSWORD, what))
    return logins
