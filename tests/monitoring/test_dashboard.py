"""The ops dashboard: who may see it, what its endpoints answer, the admin's tiles and CSV, ws/ops/."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.utils import timezone

from monitoring.models import CLUSTER, MetricSnapshot, Resolution
from opsite.asgi import application
from tests.conftest import session_cookie_for

pytestmark = pytest.mark.django_db(transaction=True)


def make_user(name: str, *, staff: bool = True, dashboard: bool = False):
    user = get_user_model().objects.create_user(name, password="pw-123456", is_staff=staff)
    if dashboard:
        user.user_permissions.add(Permission.objects.get(codename="view_dashboard"))
    return user


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_ops_refuses_anonymous_users_and_users_without_the_permission():
    anonymous = Client()
    page = anonymous.get("/ops/")
    assert page.status_code == 302 and page["Location"].startswith("/accounts/login/?next=/ops/")
    assert anonymous.get("/ops/api/series").status_code == 401
    plain_staff = logged_in(make_user("plain"))
    assert plain_staff.get("/ops/").status_code == 403
    denied = plain_staff.get("/ops/api/tables")
    assert denied.status_code == 403 and denied.json()["error"] == "forbidden"
    not_staff = logged_in(make_user("outsider", staff=False, dashboard=True))
    assert not_staff.get("/ops/").status_code == 403


def test_ops_page_and_endpoints_answer_users_with_the_permission():
    client = logged_in(make_user("watcher", dashboard=True))
    now = timezone.now().replace(second=0, microsecond=0)
    MetricSnapshot.objects.create(resolution=Resolution.MINUTE, host="web-1", taken_at=now - timedelta(minutes=5),
                                  cpu_percent=33.0)  # fmt: skip
    MetricSnapshot.objects.create(resolution=Resolution.MINUTE, host=CLUSTER, taken_at=now - timedelta(minutes=5),
                                  request_rate=4.5)  # fmt: skip
    page = client.get("/ops/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-tile="orders_today"' in html and 'value="web-1"' in html
    assert "vendor/uplot/uPlot.iife.min.js" in html and "cdn" not in html.lower()
    series = client.get("/ops/api/series?range=1h").json()
    assert series["cluster"]["request_rate"] == [4.5] and series["hosts"]["web-1"]["cpu_percent"] == [33.0]
    assert series["engine"] == connection.vendor  # the page says "not available on SQLite" where it is not
    bad = client.get("/ops/api/series?range=2y")
    assert bad.status_code == 400 and "range must be one of" in bad.json()["message"]
    tables = client.get("/ops/api/tables").json()
    assert set(tables) == {
        "slow_queries",
        "n_plus_one",
        "frontend_errors",
        "backups",
        "pitr",
        "jobs",
        "alerts",
        "cache",
        "service_levels",
    }
    assert set(tables["cache"]) == {"dashboard-series", "dashboard-tables", "orders-today"}
    # no base backup on this database yet: the backup panel says point-in-time recovery cannot reach
    assert tables["pitr"]["available"] is (connection.vendor == "postgresql")
    assert tables["pitr"].get("bases", 0) == 0
    live = client.get("/ops/api/live").json()
    assert {t["key"] for t in live["tiles"]} >= {"health", "error_rate", "p95_ms", "sockets", "orders_today"}


def test_the_chart_library_is_served_from_our_static_files():
    from django.contrib.staticfiles import finders

    found = finders.find("vendor/uplot/uPlot.iife.min.js")
    assert found, "npm ci has not installed uplot (package-lock.json)"
    with open(found, encoding="utf-8") as script:
        assert "uPlot" in script.read(2000)


def test_admin_index_shows_the_tiles_to_dashboard_users_only(admin_client):
    index = admin_client.get("/admin/").content.decode()
    assert (
        'class="ops-tiles"' in index and 'data-tile="health"' in index and 'data-tile="last_verified_backup"' in index
    )
    assert "/ops/" in index
    other = logged_in(make_user("clerk")).get("/admin/").content.decode()
    assert 'data-tile="health"' not in other


def test_snapshot_admin_is_read_only_and_exports_the_filtered_rows(admin_client):
    now = timezone.now().replace(second=0, microsecond=0)
    for host in ("a", "a", "b"):
        MetricSnapshot.objects.create(resolution=Resolution.MINUTE, host=host, cpu_percent=12.5,
                                      taken_at=now - timedelta(minutes=MetricSnapshot.objects.count()))  # fmt: skip
    listing = admin_client.get("/admin/monitoring/metricsnapshot/?host=a")
    assert listing.status_code == 200 and "Export CSV" in listing.content.decode()
    assert admin_client.get("/admin/monitoring/metricsnapshot/add/").status_code == 403
    export = admin_client.get("/admin/monitoring/metricsnapshot/export.csv?host=a")
    assert export["Content-Type"] == "text/csv"
    rows = list(csv.reader(io.StringIO(b"".join(export.streaming_content).decode())))
    assert rows[0][:2] == ["taken_at", "host"] and len(rows) == 3 and {r[1] for r in rows[1:]} == {"a"}
    ids = list(MetricSnapshot.objects.filter(host="b").values_list("pk", flat=True))
    action = admin_client.post("/admin/monitoring/metricsnapshot/",
                               {"action": "export_csv", "_selected_action": ids})  # fmt: skip
    assert b"".join(action.streaming_content).decode().count("\n") == 2


async def open_ops(cookie: str) -> WebsocketCommunicator:
    headers = [(b"origin", b"http://localhost"), (b"host", b"localhost")]
    if cookie:
        headers.append((b"cookie", cookie.encode()))
    communicator = WebsocketCommunicator(application, "/ws/ops/", headers=headers)
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def frame_of(communicator: WebsocketCommunicator, kind: str, timeout: float = 5) -> dict:
    while True:
        frame = json.loads(await communicator.receive_from(timeout=timeout))
        if frame["type"] == kind:
            return frame


async def test_ops_socket_refuses_anonymous_and_unpermitted_users():
    anonymous = await open_ops("")
    assert (await anonymous.receive_output(timeout=3))["code"] == 4401
    user = await database_sync_to_async(make_user)("nosy")
    cookie = await database_sync_to_async(session_cookie_for)(user)
    denied = await open_ops(cookie)
    assert (await denied.receive_output(timeout=3))["code"] == 4403


async def test_ops_socket_pushes_figures_and_ops_events(needs_redis):
    from backups.models import Backup
    from backups.signals import backup_finished

    user = await database_sync_to_async(make_user)("ops-viewer", dashboard=True)
    cookie = await database_sync_to_async(session_cookie_for)(user)
    socket = await open_ops(cookie)
    assert (await frame_of(socket, "hello"))["push_s"] > 0
    metrics = await frame_of(socket, "metrics")
    assert {t["key"] for t in metrics["data"]["tiles"]} >= {"health", "orders_today"}
    assert isinstance((await frame_of(socket, "orders"))["data"], dict)
    await socket.send_to(text_data="{nope")
    assert (await frame_of(socket, "error"))["code"] == "bad_json"
    announce = backup_finished.send  # as the backups app announces a finished run
    await database_sync_to_async(announce)(
        sender=Backup, frame={"type": "backup.finished", "id": 7, "status": "succeeded"}
    )
    finished = await frame_of(socket, "backup.finished")
    assert finished["id"] == 7 and finished["status"] == "succeeded"
    await socket.disconnect()
