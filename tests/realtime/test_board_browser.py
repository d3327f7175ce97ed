"""The live order board in a real headless Chromium."""

from __future__ import annotations

import re
import time

import httpx
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import expect, sync_playwright

from tests.conftest import ARTIFACTS, CHROMIUM_ARGS

from .conftest import board_login, event

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

        # a failed payment is said as such, live and when the page is rendered again
        failed = event("LIVE-42", "order.updated", data={"payment_status": "failed"})
        assert httpx.post(f"{server.url}/api/v1/orders/events", json=failed, headers=httpx_headers).status_code == 201
        status = page.locator('tr[data-order="LIVE-42"] td.status')
        expect(status).to_have_text("payment failed", timeout=10_000)
        expect(page.locator('tr[data-order="LIVE-42"]')).to_have_class(re.compile(r"\bstatus-payment-failed\b"))
        page.reload()
        expect(status).to_have_text("payment failed")
        expect(page.locator('tr[data-order="LIVE-42"]')).to_have_class(re.compile(r"\bstatus-payment-failed\b"))
        browser.close()


def test_board_rides_out_its_server_dying_and_shows_every_order_once_in_order(
    make_staff, start_server, chromium_path, needs_redis
):
    """The board's own server is killed while orders keep arriving through another process; the
    page says it is offline, reconnects with its last seq when the server is back, and shows
    every order once, newest first, without a reload."""
    import signal

    staff = make_staff()
    headers = {"Authorization": f"Bearer {staff.token}"}
    till = start_server()  # where the POS sends orders; it stays up
    board_server = start_server()
    port = int(board_server.url.rsplit(":", 1)[1])
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        board_login(page, board_server.url, staff)
        expect(page.locator("#connection")).to_have_text("live", timeout=10_000)
        page.evaluate("window.__marker = 'same page'")
        assert httpx.post(f"{till.url}/api/v1/orders/events", json=event("R-1"), headers=headers).status_code == 201
        expect(page.locator('tr[data-order="R-1"]')).to_be_visible(timeout=10_000)

        board_server.process.send_signal(signal.SIGKILL)
        board_server.process.wait(timeout=10)
        expect(page.locator("#connection")).to_contain_text("offline", timeout=10_000)
        expect(page.locator("#last-update")).to_have_text(re.compile(r"^last update \d\d:\d\d:\d\d$"))
        for n in range(2, 7):  # the kitchen keeps taking orders meanwhile
            response = httpx.post(f"{till.url}/api/v1/orders/events", json=event(f"R-{n}"), headers=headers)
            assert response.status_code == 201
        page.wait_for_timeout(12_000)  # long enough for the backoff to wait several seconds
        start_server(port=port)
        back = time.monotonic()
        bound = 10.5  # the backoff is capped near 10 s
        try:  # staff need not wait for the backoff (unless the board is already trying again)
            page.locator("#retry-now").click(timeout=1000)
            bound = 3.0
        except PlaywrightTimeout:
            pass
        expect(page.locator("#connection")).to_have_text("live", timeout=12_000)
        assert time.monotonic() - back < bound, "retry now reconnects at once, the backoff within about 10 s"
        expect(page.locator("#retry-now")).to_be_hidden()
        expect(page.locator("#last-update")).to_have_text("")
        expect(page.locator("#order-count")).to_have_text("6", timeout=10_000)
        rows = page.locator("#orders tr[data-order]").evaluate_all(
            "rows => rows.map(r => [r.dataset.order, Number(r.dataset.seq)])"
        )
        assert [order for order, _ in rows] == [f"R-{n}" for n in range(6, 0, -1)], rows  # once each, newest first
        assert [seq for _, seq in rows] == sorted((seq for _, seq in rows), reverse=True)
        assert page.evaluate("window.__marker") == "same page", "the page was reloaded"
        page.screenshot(path=str(ARTIFACTS / "board-after-reconnect.png"), full_page=True)
        browser.close()


def test_the_board_shows_every_time_in_the_restaurants_zone(make_staff, start_server, chromium_path, needs_redis):
    """A restaurant in Tokyo watched from a browser in New York: the server-rendered row and the
    live one both say Tokyo's time, in one 24-hour format, and the page says which zone."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    staff = make_staff()
    staff.restaurant.timezone = "Asia/Tokyo"
    staff.restaurant.save()
    headers = {"Authorization": f"Bearer {staff.token}"}
    server = start_server()
    assert httpx.post(f"{server.url}/api/v1/orders/events", json=event("ZONE-1"), headers=headers).status_code == 201
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        context = browser.new_context(timezone_id="America/New_York", locale="en-US")
        page = context.new_page()
        board_login(page, server.url, staff)
        expect(page.locator("#connection")).to_have_text("live", timeout=10_000)
        expect(page.locator(".board-zone")).to_have_text("times in Asia/Tokyo")
        assert (
            httpx.post(f"{server.url}/api/v1/orders/events", json=event("ZONE-2"), headers=headers).status_code == 201
        )
        expect(page.locator('tr[data-order="ZONE-2"]')).to_be_visible(timeout=10_000)
        for order in ("ZONE-1", "ZONE-2"):
            time_el = page.locator(f'tr[data-order="{order}"] time')
            at = datetime.fromisoformat(time_el.get_attribute("datetime") or "")
            expected = at.astimezone(ZoneInfo("Asia/Tokyo")).strftime("%H:%M")
            expect(time_el).to_have_text(expected)
        expect(page.locator(".board-user")).to_contain_text(staff.user.username)
        page.get_by_role("button", name="Log out").click()  # a shared tablet: the next person signs in
        page.wait_for_url("**/accounts/login/")
        page.goto(f"{server.url}/restaurants/{staff.restaurant.slug}/")
        page.wait_for_url(re.compile(r"/accounts/login/\?next="))  # signed out: the board asks for a login again
        browser.close()


def test_open_orders_stay_on_top_finished_ones_fold_away_and_amounts_carry_a_currency(
    make_staff, start_server, chromium_path, needs_redis
):
    staff = make_staff()
    staff.restaurant.currency = "CHF"
    staff.restaurant.save()
    headers = {"Authorization": f"Bearer {staff.token}"}
    server = start_server({"OPSITE_BOARD_FINISHED_VISIBLE_S": "4"})
    sent = [event("OLD-PAID"), event("OLD-PAID", "order.paid"), event("OPEN-1", currency="EUR")]
    assert httpx.post(f"{server.url}/api/v1/orders/events", json=sent, headers=headers).status_code == 201
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800})  # a 10-inch tablet, landscape
        board_login(page, server.url, staff)
        expect(page.locator("#connection")).to_have_text("live", timeout=10_000)
        # rendered by the server: the open order above, the paid one in the finished list
        expect(page.locator('#open-orders tr[data-order="OPEN-1"]')).to_contain_text("10.00 EUR")
        expect(page.locator('#finished-orders tr[data-order="OLD-PAID"]')).to_contain_text("10.00 CHF")
        live = [
            event("LIVE-1"),
            event("LIVE-2", total_amount="8.50"),
            event("LIVE-2", "order.completed", total_amount="8.50"),
        ]
        assert httpx.post(f"{server.url}/api/v1/orders/events", json=live, headers=headers).status_code == 201
        expect(page.locator('#finished-orders tr[data-order="LIVE-2"]')).to_contain_text("8.50 CHF", timeout=10_000)
        expect(page.locator("#open-orders tr")).to_have_count(2)
        assert page.locator("#open-orders tr").first.get_attribute("data-order") == "LIVE-1"  # newest open first
        expect(page.locator("#finished-count")).to_have_text("2")
        # after the visible time the finished orders fold into "show older", and unfold on demand
        expect(page.locator('tr[data-order="OLD-PAID"]')).to_be_hidden(timeout=10_000)
        expect(page.locator('tr[data-order="OPEN-1"]')).to_be_visible()  # open orders never fold
        older = page.locator("#show-older")
        expect(older).to_have_text(re.compile(r"show \d older"))
        older.click()
        expect(page.locator('tr[data-order="OLD-PAID"]')).to_be_visible()
        expect(older).to_have_attribute("aria-expanded", "true")
        for width, height in ((1280, 800), (800, 1280)):  # landscape and portrait
            page.set_viewport_size({"width": width, "height": height})
            page.wait_for_timeout(200)
            wide = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert wide <= 0, f"the board is {wide} px too wide at {width}x{height}"
            page.screenshot(path=str(ARTIFACTS / f"board-tablet-{width}x{height}.png"), full_page=True)
        browser.close()
