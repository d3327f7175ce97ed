"""Every page people use — the login page, the staff board, /ops/ and its restaurant page, the
403 page, and every admin list and form — has no serious or critical accessibility problem as
axe-core finds them in Chromium, in the light and the dark colour scheme. Screenshots of each
(light, dark, and 390 px wide) are written to test-artifacts/pages/."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import sync_playwright

from backups.models import Backup
from monitoring.alerts.defaults import ensure_default_rules
from monitoring.alerts.evaluation import alerts_evaluate
from monitoring.history.models import MetricSnapshot, Resolution
from monitoring.ledger.models import Deployment, TaskRun
from tests.conftest import ARTIFACTS, CHROMIUM_ARGS, ROOT

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser, pytest.mark.processes,
              pytest.mark.timeout(600)]  # fmt: skip
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
SHOTS = ARTIFACTS / "pages"
SERIOUS = ("serious", "critical")
# The dark scheme changes colours only: its pass runs the colour rules, the light pass all of them.
COLOUR_RULES = ["color-contrast", "link-in-text-block"]
WIDER = """() => Math.max(document.documentElement.scrollWidth - window.innerWidth,
  ...[...document.querySelectorAll("#changelist .results")].map(el => el.scrollWidth - el.clientWidth))"""
RUN_AXE = """async (only) => {
  const options = { resultTypes: ["violations"] };
  if (only) options.runOnly = { type: "rule", values: only };
  const result = await axe.run(document, options);
  return result.violations.map(v => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.slice(0, 4).map(n => n.target.join(" ") + " :: " + (n.failureSummary || "").replace(/\\s+/g, " ")),
  }));
}"""


def serious_violations(page: Any, only: list[str] | None = None) -> list[str]:
    page.add_script_tag(path=str(AXE))
    found = page.evaluate(RUN_AXE, only)
    return [f"{v['id']} ({v['impact']}): {v['help']}\n      " + "\n      ".join(v["nodes"])
            for v in found if v["impact"] in SERIOUS]  # fmt: skip


def admin_pages() -> Iterator[str]:
    """Every registered model's list, and the form of its first row where it has one."""
    for model in admin.site._registry:
        meta = model._meta
        yield reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist")
        first = model._default_manager.order_by("pk").first()
        if first is not None:
            yield reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[first.pk])


def shot_name(path: str) -> str:
    path = re.sub(r"/\d+/change/$", "/change/", path)  # one name whatever the row's id
    return re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-") or "home"


def test_every_page_has_no_serious_accessibility_problem(make_staff, start_server, chromium_path, needs_redis):
    if not AXE.exists():
        pytest.fail(f"axe-core is not installed ({AXE}); run npm ci")
    staff = make_staff(slug="trattoria")
    get_user_model().objects.create_superuser("boss", "boss@example.com", "pw-123456")
    get_user_model().objects.create_user("nobody", "nobody@example.com", "pw-123456")
    server = start_server()
    now = timezone.now().isoformat()
    events = [
        {"type": "order.created", "order_id": "A1", "total_amount": "24.50", "items_count": 3, "table": "T4",
         "currency": "EUR", "occurred_at": now},
        {"type": "order.created", "order_id": "A2", "total_amount": "12.00", "items_count": 1, "table": "T7",
         "currency": "EUR", "occurred_at": now},
        {"type": "order.paid", "order_id": "A2", "total_amount": "12.00", "items_count": 1, "payment_method": "card",
         "currency": "EUR", "occurred_at": now},
        {"type": "order.updated", "order_id": "A1", "total_amount": "24.50", "items_count": 3,
         "data": {"payment_status": "failed"}, "occurred_at": now},
    ]  # fmt: skip
    assert httpx.post(f"{server.url}/api/v1/orders/events", json=events,
                      headers={"Authorization": f"Bearer {staff.token}"}).status_code == 201  # fmt: skip
    ensure_default_rules()
    alerts_evaluate(now=timezone.now())
    rows_on_the_admin_pages()
    pages = [
        ("/accounts/login/", None, "input[name=username]"),
        (f"/restaurants/{staff.restaurant.slug}/", staff.user.username, 'tr[data-order="A1"]'),
        ("/", staff.user.username, "h1"),
        ("/ops/", "boss", "#ops-alerts tbody tr"),
        (f"/ops/restaurants/{staff.restaurant.slug}/", "boss", "h1"),
        ("/ops/", "nobody", "h1"),  # the 403 page
        ("/admin/", "boss", "#content"),
        *[(path, "boss", "#content") for path in admin_pages()],
    ]
    SHOTS.mkdir(parents=True, exist_ok=True)
    problems: dict[str, list[str]] = {}
    written: set[Path] = set()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        contexts: dict[tuple[str | None, str], Any] = {}
        for path, user, ready in pages:
            for scheme in ("light", "dark"):
                context = contexts.get((user, scheme))
                if context is None:
                    context = contexts[(user, scheme)] = browser.new_context(
                        viewport={"width": 1440, "height": 900}, color_scheme=scheme)  # fmt: skip
                    if user is not None:
                        log_in(context, server.url, user)
                page = context.new_page()
                page.goto(server.url + path)
                page.locator(ready).first.wait_for(timeout=15_000)
                page.wait_for_timeout(600 if path.startswith("/ops/") else 100)  # filled in from the API
                label = f"{path} as {user or 'anonymous'} ({scheme})"
                found = serious_violations(page, COLOUR_RULES if scheme == "dark" else None)
                if scheme == "light":  # at 1440 px nothing is cut off or scrolls sideways, a list's table included
                    found += [f"{wide} px wider than the screen" for wide in [page.evaluate(WIDER)] if wide > 0]
                if found:
                    problems[label] = found
                name = f"{shot_name(path)}-{user or 'anon'}"
                shots = [(SHOTS / f"{name}-{scheme}.png", None)]
                if scheme == "light":
                    shots.append((SHOTS / f"{name}-390.png", {"width": 390, "height": 844}))
                for shot, viewport in shots:
                    if viewport:
                        page.set_viewport_size(viewport)
                        page.wait_for_timeout(150)
                    shot.unlink(missing_ok=True)
                    page.screenshot(path=str(shot), full_page=not path.startswith("/admin/") and viewport is None)
                    written.add(shot)
                page.close()
        browser.close()
    assert not problems, "axe-core found serious or critical problems:\n" + "\n".join(
        f"  {label}:\n    " + "\n    ".join(found) for label, found in problems.items()
    )
    assert all(shot.stat().st_size > 1000 for shot in written) and len(written) == 3 * len(pages)


def rows_on_the_admin_pages() -> None:
    """A row in the lists people read most, so their forms are checked too."""
    now = timezone.now().replace(second=0, microsecond=0)
    Backup.objects.create(status=Backup.Status.VERIFIED, engine="postgresql", format="pg_dump custom",
                          size_bytes=123456, row_counts={"realtime_orderevent": 4}, finished_at=now,
                          verified_at=now, dump_seconds=0.4, verify_seconds=1.2)  # fmt: skip
    MetricSnapshot.objects.create(resolution=Resolution.MINUTE, host="web-1", taken_at=now - timedelta(minutes=1),
                                  cpu_percent=12.5, request_rate=4.5)  # fmt: skip
    TaskRun.objects.create(job="backup: nightly", task="backups.backup_database", task_id="t-1", scheduled_for=now,
                           started_at=now, status="succeeded", duration_ms=1234.5, node="worker-1")  # fmt: skip
    Deployment.objects.create(version="r2", previous_version="r1", by="boss", layout="plain", started_at=now,
                              finished_at=now, result=Deployment.Result.SUCCEEDED,
                              gate={"requests": 211, "errors": 0, "p95_ms": 10.0},
                              steps=[{"name": "migrate", "outcome": "ok", "seconds": 1.2}])  # fmt: skip


def log_in(context: Any, server_url: str, username: str) -> None:
    page = context.new_page()
    page.goto(f"{server_url}/accounts/login/?next=/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", "pw-123456")
    page.click("input[type=submit]")
    page.wait_for_load_state()
    page.close()
