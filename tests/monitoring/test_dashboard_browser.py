"""The ops dashboard in a real headless Chromium: charts drawn from snapshots, figures live over ws/ops/."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from playwright.sync_api import expect, sync_playwright

from monitoring.alerts.defaults import ensure_default_rules
from monitoring.alerts.evaluation import alerts_evaluate
from monitoring.history.models import Resolution, RestaurantSnapshot
from monitoring.history.snapshots import snapshot_collect
from monitoring.ledger.models import Deployment
from monitoring.ledger.runs import run_claim
from monitoring.nodes.reports import node_report
from monitoring.requests.queries import get_aggregator
from tests.conftest import ARTIFACTS, CHROMIUM_ARGS

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser, pytest.mark.processes]


def order(order_id: str, kind: str = "order.created") -> dict[str, object]:
    return {"type": kind, "order_id": order_id, "total_amount": "18.00", "items_count": 2}


def _log_in_to_ops(page: Any, server_url: str) -> None:
    page.goto(f"{server_url}/accounts/login/?next=/ops/")
    page.fill("input[name=username]", "boss")
    page.fill("input[name=password]", "pw-123456")
    page.click("input[type=submit]")
    page.wait_for_url(re.compile(r"/ops/(\?.*)?$"))  # the page keeps its range in the address


def test_dashboard_draws_charts_and_updates_live(make_staff, start_server, chromium_path, needs_redis):
    staff = make_staff()
    get_user_model().objects.create_superuser("boss", "boss@example.com", "pw-123456")
    server = start_server({"OPSITE_DASHBOARD_PUSH_S": "1"})
    headers = {"Authorization": f"Bearer {staff.token}"}
    for n in range(3):
        assert httpx.post(f"{server.url}/api/v1/orders/events", json=order(f"A{n}"), headers=headers).status_code == 201
    for _ in range(20):
        httpx.get(f"{server.url}/health/live")
    # A few minutes of history, recorded by the snapshot job from this machine's real node report.
    node_report(role="web")
    now = timezone.now()
    for minutes_ago in range(8, 0, -1):
        snapshot_collect(now=now - timedelta(minutes=minutes_ago))
    # statements of the last hour, as request processes record them (the store is shared)
    statements = get_aggregator()
    for n, (sql, ms) in enumerate((("SELECT * FROM realtime_orderevent WHERE restaurant_id = 1", 40.0),
                                   ("SELECT * FROM realtime_restaurant WHERE slug = 'x'", 2.0))):  # fmt: skip
        for _ in range(3 + 5 * n):
            statements.add(sql, ms)
    statements.flush()
    ensure_default_rules()
    alerts_evaluate()  # beat has never run here: its heartbeat rule fires
    # revenue in two currencies: one chart each, never one axis
    staff.restaurant.currency = "EUR"
    staff.restaurant.save()
    diner = make_staff(slug="diner").restaurant
    diner.currency = "USD"
    diner.save()
    for place, amount in ((staff.restaurant, "120.00"), (diner, "95.50")):
        RestaurantSnapshot.objects.update_or_create(
            resolution=Resolution.MINUTE, taken_at=(now - timedelta(minutes=2)).replace(second=0, microsecond=0),
            restaurant=place, defaults={"orders": 4, "paid": 3, "revenue": amount},
        )  # fmt: skip
    run_claim(job="monitoring: metric snapshot", task="monitoring.snapshot_collect", task_id="t-1")
    good = Deployment.objects.create(version="r2", previous_version="r1", by="bob", layout="plain",
                                     started_at=now - timedelta(minutes=6), finished_at=now - timedelta(minutes=5),
                                     result=Deployment.Result.SUCCEEDED)  # fmt: skip
    Deployment.objects.create(
        version="r3",
        previous_version="r2",
        by="bob",
        layout="plain",
        started_at=now - timedelta(minutes=3),
        finished_at=now - timedelta(minutes=2),
        result=Deployment.Result.ROLLED_BACK,
        reason="health gate failed: error rate 50.0 %",
    )

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        _log_in_to_ops(page, server.url)
        expect(page.locator("#ops-live-state")).to_have_text("live", timeout=10_000)
        for chart in ("request_rate", "cpu_percent", "memory_percent", "db_connections"):
            section = page.locator(f'.ops-chart[data-chart="{chart}"]')
            expect(section.locator("canvas")).to_have_count(1, timeout=10_000)
            assert int(section.get_attribute("data-points") or 0) >= 8, chart
        assert page.evaluate("Object.keys(window.opsDashboard.charts).length") >= 8
        # charts say what a point counts, show the latest values, and share one crosshair
        expect(page.locator('.ops-chart[data-chart="orders"] h2')).to_have_text("Orders per restaurant, per minute")
        revenue = page.locator(".ops-chart[data-currency]")
        expect(revenue).to_have_count(2)
        expect(revenue.nth(0).locator("h2")).to_have_text("Revenue in EUR per restaurant, per minute")
        expect(revenue.nth(1).locator("h2")).to_have_text("Revenue in USD per restaurant, per minute")
        expect(revenue.nth(1).locator(".u-legend")).to_contain_text("diner")
        expect(revenue.nth(1).locator(".u-legend")).not_to_contain_text(staff.restaurant.slug)
        latest = page.locator('.ops-chart[data-chart="cpu_percent"] .u-legend .u-series').nth(1).locator(".u-value")
        expect(latest).to_have_text(re.compile(r"^\d+(\.\d+)? %$"))
        box = page.locator('.ops-chart[data-chart="request_rate"] .u-over').bounding_box()
        assert box is not None
        page.mouse.move(box["x"] + box["width"] * 0.9, box["y"] + box["height"] / 2)
        page.wait_for_function("window.opsDashboard.charts.latency.cursor.left > 0")
        # deploys: a mark on every chart where each finished, and in words above them
        deploys = page.locator("#ops-deploys li")
        expect(deploys).to_have_count(2)
        expect(deploys.nth(0)).to_contain_text("deploy r2 by bob: succeeded")
        expect(deploys.nth(1)).to_contain_text("deploy r3 by bob: rolled back (health gate failed")
        mark = page.evaluate(
            """(at) => { const u = window.opsDashboard.charts.request_rate;
            const x = Math.round(u.valToPos(at, "x", true)), y = Math.round(u.bbox.top + 2);
            return Array.from(u.ctx.getImageData(x, y, 1, 1).data).slice(0, 3); }""",
            good.finished_at.timestamp(),
        )
        assert mark[1] > 120 and mark[1] > mark[0] + 40 and mark[1] > mark[2] + 20, mark  # the succeeded mark's green
        tile = page.locator('.ops-tile[data-tile="orders_today"] .value')
        expect(tile).to_have_text("3", timeout=10_000)
        expect(page.locator("#ops-orders tbody")).to_contain_text(staff.restaurant.slug)
        expect(page.locator("#ops-task-runs tbody")).to_contain_text("monitoring: metric snapshot")
        # rows lead to their pages: a restaurant's service levels, an alert, a job's runs
        expect(page.locator("#ops-orders tbody a").first).to_have_attribute(
            "href", f"restaurants/{staff.restaurant.slug}/"
        )
        expect(page.locator("#ops-alerts tbody a").first).to_have_attribute(
            "href", re.compile(r"^/admin/monitoring/alert/\d+/change/$")
        )
        expect(page.locator("#ops-task-runs tbody a").first).to_have_attribute(
            "href", re.compile(r"^/admin/monitoring/taskrun/\?job=")
        )
        # statements say how they are sorted, can be sorted otherwise, and lead to their admin page
        statements = page.locator("#ops-slow-queries tbody tr")
        expect(statements.first.locator("a")).to_have_attribute(
            "href", re.compile(r"^/admin/monitoring/queryfingerprint/\?q=\w+")
        )
        expect(statements.first.locator("td").nth(4)).to_have_text(re.compile(r"^\d+(\.\d)? %$"))
        expect(page.locator("#ops-slow-queries-title")).to_have_text("Heaviest statements (1 h), by total time")
        page.click('.ops-sort[data-sort="count"]')
        expect(page.locator("#ops-slow-queries-title")).to_have_text("Heaviest statements (1 h), by count")
        counts = [int(c) for c in statements.locator("td:nth-child(2)").all_inner_texts()]
        assert counts == sorted(counts, reverse=True) and len(counts) >= 2, counts
        expect(page.locator("#ops-alerts tbody")).to_contain_text("Beat heartbeat older than 45 seconds")
        assert int(page.locator('.ops-tile[data-tile="alerts_firing"] .value').inner_text()) >= 1
        page.screenshot(path=str(ARTIFACTS / "ops-dashboard.png"), full_page=True)
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(ARTIFACTS / "ops-dashboard-top.png"))  # the tiles and the first charts
        page.evaluate("window.__marker = 'same page'")

        response = httpx.post(f"{server.url}/api/v1/orders/events", json=[order("B1"), order("B2")], headers=headers)
        assert response.status_code == 201
        expect(tile).to_have_text("5", timeout=10_000)
        assert page.evaluate("window.__marker") == "same page", "the page was reloaded"

        page.click('.ops-range[data-range="7d"]')
        expect(page.locator('.ops-chart[data-chart="request_rate"] .empty')).to_be_visible()  # no hour rows yet
        page.emulate_media(color_scheme="dark")
        page.click('.ops-range[data-range="1h"]')
        expect(page.locator('.ops-chart[data-chart="request_rate"] canvas')).to_have_count(1)
        page.screenshot(path=str(ARTIFACTS / "ops-dashboard-dark.png"), full_page=True)
        assert not errors, errors
        browser.close()


def test_live_tiles_reconnect_after_their_server_dies_without_a_reload(
    make_staff, start_server, chromium_path, needs_redis
):
    """The dashboard's own server is killed while orders keep arriving through another process;
    the page says it is reconnecting, and once the server is back its tiles show every order,
    without a reload."""
    import signal

    staff = make_staff()
    get_user_model().objects.create_superuser("boss", "boss@example.com", "pw-123456")
    headers = {"Authorization": f"Bearer {staff.token}"}
    till = start_server()  # where the POS sends orders; it stays up
    dashboard = start_server({"OPSITE_DASHBOARD_PUSH_S": "1"})
    port = int(dashboard.url.rsplit(":", 1)[1])
    assert httpx.post(f"{till.url}/api/v1/orders/events", json=order("C1"), headers=headers).status_code == 201
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        _log_in_to_ops(page, dashboard.url)
        expect(page.locator("#ops-live-state")).to_have_text("live", timeout=10_000)
        tile = page.locator('.ops-tile[data-tile="orders_today"] .value')
        expect(tile).to_have_text("1", timeout=10_000)
        page.evaluate("window.__marker = 'same page'")

        dashboard.process.send_signal(signal.SIGKILL)
        dashboard.process.wait(timeout=10)
        expect(page.locator("#ops-live-state")).to_have_text(re.compile(r"^stale since \d\d:\d\d:\d\d: reconnecting…$"),
                                                              timeout=10_000)  # fmt: skip
        assert page.locator("#ops-live-state").get_attribute("data-state") == "lost"
        for n in range(2, 5):  # the restaurants keep taking orders meanwhile
            response = httpx.post(f"{till.url}/api/v1/orders/events", json=order(f"C{n}"), headers=headers)
            assert response.status_code == 201
        page.wait_for_timeout(20_000)  # down long enough for the backoff to reach its cap
        start_server({"OPSITE_DASHBOARD_PUSH_S": "1"}, port=port)
        back = time.monotonic()
        expect(page.locator("#ops-live-state")).to_have_text("live", timeout=15_000)
        assert time.monotonic() - back <= 10.5, "the backoff is capped near 10 s"
        expect(tile).to_have_text("4", timeout=10_000)
        expect(page.locator("#ops-orders tbody")).to_contain_text(staff.restaurant.slug)
        assert page.evaluate("window.__marker") == "same page", "the page was reloaded"
        page.screenshot(path=str(ARTIFACTS / "ops-after-reconnect.png"), full_page=True)
        browser.close()


def test_a_failed_request_says_so_keeps_what_it_shows_and_retries(make_staff, start_server, chromium_path,
                                                                    needs_redis):  # fmt: skip
    """An API call that fails leaves the charts of the range that loaded, with its button pressed,
    says what failed and since when the data is, and a retry loads it once the server answers."""
    make_staff()
    get_user_model().objects.create_superuser("boss", "boss@example.com", "pw-123456")
    node_report(role="web")
    now = timezone.now()
    for minutes_ago in range(4, 0, -1):
        snapshot_collect(now=now - timedelta(minutes=minutes_ago))
    server = start_server()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.route("**/ops/api/tables", lambda route: route.fulfill(status=503, body='{"error": "unavailable"}'))
        _log_in_to_ops(page, server.url)
        tables = page.locator("#ops-tables-status")
        expect(tables).to_have_attribute("data-state", "error", timeout=10_000)
        expect(tables).to_contain_text("Could not load the tables (HTTP 503); nothing to show yet.")
        charts = page.locator("#ops-charts-status")
        expect(charts).to_have_attribute("data-state", "ok", timeout=10_000)
        expect(charts).to_contain_text("charts updated")

        page.route("**/ops/api/series?*", lambda route: route.fulfill(status=500, body="{}"))
        page.click('.ops-range[data-range="24h"]')
        expect(charts).to_have_attribute("data-state", "error")
        expect(charts).to_contain_text(
            re.compile(r"Could not load the charts \(HTTP 500\); showing data from \d\d:\d\d")
        )
        expect(page.locator('.ops-range[data-range="1h"]')).to_have_attribute("aria-pressed", "true")
        expect(page.locator('.ops-range[data-range="24h"]')).to_have_attribute("aria-pressed", "false")
        expect(page.locator('.ops-chart[data-chart="request_rate"] canvas')).to_have_count(1)  # the 1 h charts stay

        assert page.url.endswith("/ops/?range=1h"), page.url  # the range that shows, in the address
        page.unroute("**/ops/api/series?*")
        page.unroute("**/ops/api/tables")
        charts.get_by_role("button", name="Retry").click()
        expect(charts).to_have_attribute("data-state", "ok")
        tables.get_by_role("button", name="Retry").click()
        expect(tables).to_have_attribute("data-state", "ok")
        expect(tables).to_contain_text("tables updated")

        # the range and the hosts are kept in the address: a reload shows the same
        page.click('.ops-range[data-range="24h"]')
        expect(charts).to_have_attribute("data-state", "ok")
        for box in page.locator(".ops-host").all():
            box.uncheck()
        expect(page.locator('.ops-chart[data-chart="cpu_percent"] .empty')).to_have_text("no host selected")
        assert page.url.endswith("/ops/?range=24h&hosts=none"), page.url
        page.reload()
        expect(page.locator('.ops-range[data-range="24h"]')).to_have_attribute("aria-pressed", "true")
        assert page.locator(".ops-host:checked").count() == 0
        expect(page.locator('.ops-chart[data-chart="cpu_percent"] .empty')).to_have_text("no host selected")
        browser.close()


def click_point(page: Any, index: int) -> None:
    """A real mouse click on the latency chart at the point ``index`` (negative from the end)."""
    x, y = page.evaluate("""(i) => { const u = window.opsDashboard.charts.latency; const box = u.over.getBoundingClientRect();
                                      const t = u.data[0].at(i); return [box.left + u.valToPos(t, "x"), box.top + 20]; }""",
                         index)  # fmt: skip
    page.mouse.move(x, y)
    page.mouse.click(x, y)


def test_a_point_on_the_latency_chart_leads_to_its_slow_requests(make_staff, start_server, chromium_path, needs_redis):
    """Requests over the slow bound are kept by the server; a click on the latency chart lists
    those of the point's minute, each linking to its record (statements, profile) in the admin."""
    from monitoring.models import SlowRequest

    get_user_model().objects.create_superuser("boss", "boss@example.com", "pw-123456")
    server = start_server({"OPSITE_SLOW_REQUEST_MS": "0", "OPSITE_METRICS_FLUSH_S": "0.5"})
    for n in range(3):
        httpx.get(f"{server.url}/health/ready", headers={"X-Request-ID": f"slow-now-{n:04d}"})
    node_report(role="web")
    now = timezone.now()
    for minutes_ago in range(8, 0, -1):
        snapshot_collect(now=now - timedelta(minutes=minutes_ago))
    deadline = timezone.now() + timedelta(seconds=15)
    while not SlowRequest.objects.filter(request_id="slow-now-0002").exists():
        assert timezone.now() < deadline, "the server never wrote its slow requests"
    kept = SlowRequest.objects.get(request_id="slow-now-0002")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        _log_in_to_ops(page, server.url)
        table = page.locator("#ops-slow-requests tbody")
        expect(table).to_contain_text("slow-now-0002", timeout=10_000)  # the last hour, by default
        expect(page.locator('.ops-chart[data-chart="latency"] canvas')).to_have_count(1, timeout=10_000)
        # a point whose minute holds none of them: the list empties and says which minute it is
        click_point(page, 0)
        expect(page.locator("#ops-slow-requests-title")).to_contain_text("+ 1 min")
        expect(table).to_contain_text("nothing here")
        # a point whose minute holds one: back-date the kept row into the newest point's minute
        newest = page.evaluate("() => window.opsDashboard.charts.latency.data[0].at(-1)")
        with ThreadPoolExecutor(1) as thread:  # the ORM refuses to run in Playwright's event loop thread
            thread.submit(lambda: SlowRequest.objects.filter(pk=kept.pk).update(
                created_at=datetime.fromtimestamp(newest + 5, tz=UTC))).result()  # fmt: skip
        click_point(page, -1)
        link = table.locator("a", has_text="slow-now-0002")
        expect(link).to_have_count(1)
        link.click()
        expect(page.locator("body")).to_contain_text(re.compile(r"statements \(slowest first", re.IGNORECASE))
        expect(page.locator("body")).to_contain_text("GET /health/ready")
        browser.close()


def test_times_are_in_one_labelled_zone_that_can_be_switched(make_staff, start_server, chromium_path, needs_redis):
    """UTC by default, said in the header of the dashboard and the admin; the viewer's own zone
    at the press of a button, on both, with the admin's own times and the dashboard's in it."""
    get_user_model().objects.create_superuser("boss", "boss@example.com", "pw-123456")
    finished = datetime(2026, 6, 1, 12, 5, tzinfo=UTC)
    Deployment.objects.create(version="r9", by="bob", layout="plain", started_at=finished - timedelta(minutes=1),
                              finished_at=finished, result=Deployment.Result.SUCCEEDED)  # fmt: skip
    server = start_server()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        page = browser.new_context(timezone_id="Asia/Tokyo", locale="en-GB").new_page()
        _log_in_to_ops(page, server.url)
        zone = page.locator("#display-zone")
        expect(zone).to_contain_text("Times in UTC")
        assert page.locator("#ops").get_attribute("data-tz") == "UTC"
        icon = page.locator('link[rel="icon"]').get_attribute("href") or ""
        assert httpx.get(f"{server.url}{icon}").status_code == 200  # every page has its favicon
        page.goto(f"{server.url}/admin/monitoring/deployment/")
        expect(zone).to_contain_text("Times in UTC")
        expect(page.locator("#result_list")).to_contain_text("12:05 p.m.")  # the admin's own rendering, in UTC
        zone.get_by_role("button", name="show my local time").click()
        expect(zone).to_contain_text("Times in Asia/Tokyo")
        expect(page.locator("#result_list")).to_contain_text("9:05 p.m.")  # the same moment in Tokyo
        page.goto(f"{server.url}/ops/")
        assert page.locator("#ops").get_attribute("data-tz") == "Asia/Tokyo"
        expect(zone).to_contain_text("Times in Asia/Tokyo")
        stale = page.evaluate("""() => new Date(Date.UTC(2026, 5, 1, 12, 5)).toLocaleTimeString([],
            { hour: "2-digit", minute: "2-digit", hourCycle: "h23", timeZone: document.getElementById("ops").dataset.tz })""")
        assert stale == "21:05"
        zone.get_by_role("button", name="show UTC").click()
        expect(zone).to_contain_text("Times in UTC")
        browser.close()
