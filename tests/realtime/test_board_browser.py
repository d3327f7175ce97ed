"""The live order board in a real headless Chromium."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import expect, sync_playwright

from tests.conftest import ARTIFACTS, CHROMIUM_ARGS

from .conftest import event

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser, pytest.mark.processes]


def test_board_shows_a_new_order_without_a_reload(make_staff, start_server, chromium_path, needs_redis):
    staff = make_staff()
    httpx_headers = {"Authorization": f"Bearer {staff.token}"}
    server = start_server()
    httpx.post(f"{server.url}/api/v1/orders/events", json=event("EARLY-1", table="7"), headers=httpx_headers)
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(f"{server.url}/accounts/login/?next=/restaurants/{staff.restaurant.slug}/")
        page.fill("input[name=username]", staff.user.username)
        page.fill("input[name=password]", "pw-123456")
        page.click("input[type=submit]")
        page.wait_for_url(f"**/restaurants/{staff.restaurant.slug}/")
        expect(page.locator("#connection")).to_have_text("live", timeout=10_000)
        expect(page.locator('tr[data-order="EARLY-1"]')).to_be_visible()
        expect(page.locator("#order-count")).to_have_text("1")
        page.evaluate("window.__marker = 'same page'")

        response = httpx.post(
            f"{server.url}/api/v1/orders/events",
            json=[event("LIVE-42", table="12", total_amount="31.50"), event("EARLY-1", "order.paid")],
            headers=httpx_headers,
        )
        assert response.status_code == 201
        new_row = page.locator('tr[data-order="LIVE-42"]')
        expect(new_row).to_be_visible(timeout=10_000)
        expect(new_row).to_contain_text("31.50")
        expect(page.locator('tr[data-order="EARLY-1"] td.status')).to_have_text("paid")
        expect(page.locator('tr[data-order="EARLY-1"]')).to_contain_text("7")
        expect(page.locator("#order-count")).to_have_text("2")
        assert page.evaluate("window.__marker") == "same page", "the page was reloaded"
        page.screenshot(path=str(ARTIFACTS / "board-live-order.png"), full_page=True)
        browser.close()
