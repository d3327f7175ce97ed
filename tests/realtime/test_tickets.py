"""Ticket times: open orders past the restaurant's expected time plus its late and very-late
thresholds, counted for the alert rules, and shown on the board as a running age in words."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from django.utils import timezone
from playwright.sync_api import expect, sync_playwright

from monitoring.alerts.defaults import TICKETS_LATE_RULE, TICKETS_VERY_LATE_RULE, ensure_default_rules
from monitoring.alerts.evaluation import alerts_evaluate
from monitoring.alerts.models import Alert, AlertRule
from realtime.selectors import late_tickets
from tests.conftest import CHROMIUM_ARGS

from .conftest import board_login, event, ingest_sync

pytestmark = pytest.mark.django_db(transaction=True)


def opened(minutes_ago: float, order_id: str, kind: str = "order.created"):
    at = timezone.now() - timedelta(minutes=minutes_ago)
    return event(order_id, kind, occurred_at=at.isoformat())


@pytest.fixture
def kitchen(make_staff):
    staff = make_staff()
    restaurant = staff.restaurant
    restaurant.ticket_expected_s, restaurant.ticket_late_after_s, restaurant.ticket_very_late_after_s = 600, 300, 420
    restaurant.save()
    ingest_sync(restaurant,
                opened(20, "A"),  # 10 min past the expected 10: very late (and late)
                opened(16, "B"), opened(15, "B", "order.updated"),  # 6 min past: late, not very late
                opened(30, "C"), opened(29, "C", "order.paid"),  # closed: paid
                opened(40, "D"), opened(35, "D", "order.cancelled"),  # closed: cancelled
                opened(5, "E"))  # within its time  # fmt: skip
    return staff


def test_open_orders_are_counted_against_the_restaurants_own_thresholds(kitchen, make_staff):
    other = make_staff()  # its default thresholds: 15 min expected, +5 late
    ingest_sync(other.restaurant, opened(18, "X"))
    late = late_tickets()
    mine = late[kitchen.restaurant.slug]
    assert (mine["late"], mine["very_late"]) == (2, 1)
    assert 590 < mine["oldest_over_s"] < 610  # A: 20 min open, 10 expected
    assert (late[other.restaurant.slug]["late"], late[other.restaurant.slug]["very_late"]) == (0, 0)


def test_the_default_rules_fire_for_that_restaurant(kitchen):
    ensure_default_rules()
    AlertRule.objects.exclude(name__in=[TICKETS_LATE_RULE, TICKETS_VERY_LATE_RULE]).update(enabled=False)
    alerts_evaluate(now=timezone.now())
    firing = {(a.rule.name, a.labels["restaurant"], a.value)
              for a in Alert.objects.select_related("rule").filter(state="firing")}  # fmt: skip
    assert (TICKETS_LATE_RULE, kitchen.restaurant.slug, 2.0) in firing
    assert (TICKETS_VERY_LATE_RULE, kitchen.restaurant.slug, 1.0) in firing


def test_a_very_late_threshold_must_be_past_the_late_one(make_restaurant):
    from django.core.exceptions import ValidationError

    restaurant = make_restaurant()
    restaurant.ticket_late_after_s, restaurant.ticket_very_late_after_s = 300, 300
    with pytest.raises(ValidationError, match="more than the late threshold"):
        restaurant.full_clean()


@pytest.mark.browser
@pytest.mark.processes
def test_the_board_shows_each_open_orders_age_and_says_when_it_is_late(kitchen, start_server, chromium_path,
                                                                        needs_redis):  # fmt: skip
    server = start_server()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        board_login(page, server.url, kitchen)
        expect(page.locator('tr[data-order="A"] td.age')).to_contain_text("very late")
        expect(page.locator('tr[data-order="A"]')).to_have_class("status-created ticket-very-late")
        expect(page.locator('tr[data-order="B"] td.age')).to_have_text(_late_text())
        # paid: no timer (and, once the day it was paid on is over, not on the board at all)
        assert page.locator('tr[data-order="C"] td.age').all_inner_texts() in ([], [""])
        expect(page.locator('tr[data-order="E"] td.age')).to_have_text(_plain_age())
        httpx.post(f"{server.url}/api/v1/orders/events", json=opened(25, "LIVE"),
                   headers={"Authorization": f"Bearer {kitchen.token}"})  # fmt: skip
        expect(page.locator('tr[data-order="LIVE"] td.age')).to_contain_text("very late", timeout=10_000)
        browser.close()


def _late_text():
    import re

    return re.compile(r"^1[56]:\d\d late$")


def _plain_age():
    import re

    return re.compile(r"^[45]:\d\d$")


def test_an_order_opened_before_midnight_stays_on_the_board_until_it_is_finished(make_restaurant):
    from realtime.selectors import board_orders_today, restaurant_day_start

    restaurant = make_restaurant()
    midnight = restaurant_day_start(restaurant) - timedelta(days=1)  # the board as it was at 00:10 yesterday

    def at(minutes: float, order_id: str, kind: str = "order.created"):
        return event(order_id, kind, occurred_at=(midnight + timedelta(minutes=minutes)).isoformat())

    ingest_sync(restaurant,
                at(-10, "OPEN"),  # opened 23:50, still open: stays
                at(-20, "DONE"), at(-15, "DONE", "order.paid"),  # finished yesterday: gone
                at(-5, "LATE-PAID"), at(5, "LATE-PAID", "order.paid"),  # finished today: among today's finished
                at(-60 * 30, "STALE"),  # opened the day before yesterday: gone
                at(3, "NEW"))  # fmt: skip
    orders = {o["order_id"]: o for o in board_orders_today(restaurant, now=midnight + timedelta(minutes=10))}
    assert set(orders) == {"OPEN", "LATE-PAID", "NEW"}
    assert not orders["OPEN"]["finished"] and orders["LATE-PAID"]["finished"]
