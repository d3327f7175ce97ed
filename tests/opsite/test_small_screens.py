"""The pages people open on a phone — the login page, the staff board and /ops/ — fit a
360 px wide screen: no horizontal scrolling of the page, with real content in them."""

from __future__ import annotations

import re

import httpx
import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from playwright.sync_api import sync_playwright

from monitoring.alerts.defaults import ensure_default_rules
from monitoring.alerts.evaluation import alerts_evaluate
from tests.conftest import ARTIFACTS, CHROMIUM_ARGS

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser, pytest.mark.processes]
WIDTH = 360


def overflow(page) -> int:
    """How many pixels the page is wider than the screen (0: no horizontal scroll)."""
    return int(page.evaluate("document.documentElement.scrollWidth - window.innerWidth"))


def log_in(page, server_url: str, username: str, landing: str) -> None:
    page.goto(f"{server_url}/accounts/login/?next={landing}")
    assert overflow(page) <= 0, f"the login page is {overflow(page)} px too wide at {WIDTH} px"
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", "pw-123456")
    page.click("input[type=submit]")
    page.wait_for_url(re.compile(re.escape(landing) + r"(\?.*)?$"))  # /ops/ keeps its range in the address


def test_login_board_and_ops_fit_a_360_px_screen(make_staff, start_server, chromium_path, needs_redis):
    staff = make_staff()
    get_user_model().objects.create_superuser("boss", "boss@example.com", "pw-123456")
    server = start_server()
    long_id = "ORDER-WITH-A-RATHER-LONG-IDENTIFIER-0001"
    events = [{"type": "order.created", "order_id": long_id if n == 0 else f"A{n}", "total_amount": "1234.50",
               "items_count": 12, "table": "Terrace 14", "currency": "EUR"} for n in range(5)]  # fmt: skip
    assert httpx.post(f"{server.url}/api/v1/orders/events", json=events,
                      headers={"Authorization": f"Bearer {staff.token}"}).status_code == 201  # fmt: skip
    ensure_default_rules()
    alerts_evaluate(now=timezone.now())  # the alerts table has rows (beat, backups…)
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        board = browser.new_page(viewport={"width": WIDTH, "height": 740})
        log_in(board, server.url, staff.user.username, f"/restaurants/{staff.restaurant.slug}/")
        board.locator(f'tr[data-order="{long_id}"]').wait_for()
        board.screenshot(path=str(ARTIFACTS / "board-360.png"), full_page=True)
        assert overflow(board) <= 0, f"the board is {overflow(board)} px too wide at {WIDTH} px"
        ops = browser.new_page(viewport={"width": WIDTH, "height": 740})
        log_in(ops, server.url, "boss", "/ops/")
        ops.locator("#ops-alerts tbody tr").first.wait_for()
        ops.wait_for_timeout(1000)  # the tables and charts are filled in from the API
        ops.screenshot(path=str(ARTIFACTS / "ops-360.png"), full_page=True)
        assert overflow(ops) <= 0, f"/ops/ is {overflow(ops)} px too wide at {WIDTH} px"
        browser.close()
