from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from monitoring.health import dependencies
from monitoring.health import probes as health
from monitoring.health.probes import HealthCheck, Probe
from monitoring.health.services import heartbeat_record
from tests.conftest import ROOT, free_port, server_env

pytestmark = pytest.mark.django_db

PROTECTED = ["/health/detailed", "/health/dependencies", "/health/stats"]


def test_health_live_and_summary(client):
    assert client.get("/health/live").json() == {"status": "alive"}
    summary = client.get("/health").json()
    assert summary["status"] == "ok" and summary["service"] == "opsite" and summary["uptime_seconds"] >= 0


def test_ready_reports_its_checks(client):
    body = client.get("/health/ready").json()
    assert body["status"] == "ready"
    assert body["checks"]["database"]["status"] == "ok" and "ms" in body["checks"]["database"]
    assert "channel_layer" in body["checks"]


def test_a_hanging_critical_check_makes_ready_503_within_the_timeout(client, settings, monkeypatch):
    settings.OPSITE_HEALTH_READY_TIMEOUT_S = 0.5
    release = threading.Event()

    def hang() -> Probe:
        release.wait(10)
        return Probe()

    registry = dict(health.REGISTRY)
    registry["hang"] = HealthCheck("hang", hang, critical=True, timeout_s=5)
    monkeypatch.setattr(health, "REGISTRY", registry)
    started = time.monotonic()
    response = client.get("/health/ready")
    elapsed = time.monotonic() - started
    release.set()
    assert response.status_code == 503
    assert response.json()["checks"]["hang"]["detail"].startswith("timed out")
    assert elapsed < 1.5


@pytest.mark.parametrize("path", PROTECTED)
def test_protected_endpoints_refuse_anonymous_and_non_staff(client, path, django_user_model):
    assert client.get(path).status_code == 401
    client.force_login(django_user_model.objects.create_user("cook", password="x"))
    assert client.get(path).status_code == 403


@pytest.mark.parametrize("path", PROTECTED)
def test_protected_endpoints_accept_tokens_and_staff(client, path, settings, django_user_model):
    settings.OPS_API_TOKENS = ["ops-token-one", "ops-token-two"]
    assert client.get(path, HTTP_AUTHORIZATION="Bearer ops-token-two").status_code in (200, 503)
    assert client.get(path, HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    client.force_login(django_user_model.objects.create_user("ops", password="x", is_staff=True))
    assert client.get(path).status_code in (200, 503)


@pytest.mark.django_db(transaction=True)
def test_detailed_lists_every_component(admin_client):
    heartbeat_record(name="beat")
    body = admin_client.get("/health/detailed").json()
    components = body["components"]
    for name in ("database", "cache", "channel_layer", "celery", "beat", "system", "websocket", "backup_storage"):
        assert name in components and "status" in components[name] and "ms" in components[name]
    assert components["beat"]["status"] == "ok" and components["beat"]["age_s"] < 5
    assert components["system"]["memory_percent"] > 0
    assert body["status"] in ("healthy", "degraded")


def test_stats_report_windows_orders_and_sockets(admin_client, make_staff):
    from monitoring.requests.traffic import get_recorder
    from tests.realtime.conftest import event, ingest_sync

    staff = make_staff()
    ingest_sync(staff.restaurant, event("S1"), event("S1", "order.paid", total_amount="12.00", payment_method="card"))
    for _ in range(3):
        admin_client.get("/health/live")
    get_recorder().flush()
    body = admin_client.get("/health/stats").json()
    assert set(body["requests"]) == {"1m", "5m", "1h"}
    one_minute = body["requests"]["1m"]
    assert one_minute["overall"]["requests"] >= 3 and one_minute["overall"]["p99_ms"] is not None
    assert one_minute["routes"]["GET /health/live"]["requests"] >= 3
    assert body["orders_today"]["by_restaurant"][staff.restaurant.slug]["revenue"] == "12.00"
    assert "total" in body["sockets"]


class _Sink(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_service() -> Iterator[tuple[str, type[_Sink]]]:
    handler = type("Sink", (_Sink,), {"status": 200})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/status", handler
    server.shutdown()


def test_dependencies_report_status_and_open_the_circuit(admin_client, settings, http_service):
    url, handler = http_service
    payments, printer = f"payments-{uuid.uuid4().hex[:6]}", f"printer-{uuid.uuid4().hex[:6]}"  # breakers are per name
    settings.OPSITE_DEPENDENCIES = {payments: url, printer: f"http://127.0.0.1:{free_port()}/"}
    settings.OPSITE_DEPENDENCY_FAILURES = 2
    settings.OPSITE_DEPENDENCY_RESET_S = 0.3
    body = admin_client.get("/health/dependencies").json()
    states = {d["name"]: d for d in body["dependencies"]}
    assert states[payments]["status"] == "ok" and states[payments]["circuit"] == "closed"
    assert states[printer]["status"] == "failed" and body["status"] == "degraded"

    handler.status = 503
    for _ in range(2):
        dependencies.check_one(payments, url)
    opened = dependencies.check_one(payments, url)
    assert opened["circuit"] == "open" and opened["ms"] == 0.0  # not even called
    handler.status = 200
    time.sleep(0.35)
    recovered = dependencies.check_one(payments, url)
    assert recovered["status"] == "ok" and recovered["circuit"] == "closed"


def test_metrics_need_a_token_or_an_allowed_address(client, settings):
    settings.OPSITE_METRICS_ALLOWED_NETWORKS = ["10.9.0.0/16"]
    settings.OPS_API_TOKENS = ["scrape-token"]
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-token").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="10.9.3.4").status_code == 200


def test_metrics_pass_promtool(client, make_staff, tmp_path):
    promtool = shutil.which("promtool")
    if promtool is None:
        from tests.conftest import IN_CI

        if IN_CI:
            pytest.fail("promtool (Debian package prometheus) is required under CI=true")
        pytest.skip("promtool is not installed (Debian package prometheus)")
    from monitoring.requests.traffic import get_recorder
    from tests.realtime.conftest import event, ingest_sync

    staff = make_staff()
    ingest_sync(staff.restaurant, event("M1"), event("M1", "order.paid", payment_method="cash"))
    client.get("/health/live")
    get_recorder().flush()
    heartbeat_record(name="beat")
    text = client.get("/metrics").content
    for name in (b"opsite_http_request_rate", b"opsite_http_request_duration_seconds", b"opsite_orders_today",
                 b"opsite_revenue_today", b"opsite_beat_heartbeat_age_seconds", b"django_cache_get_total"):  # fmt: skip
        assert name in text, name
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, timeout=30)
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()


def test_health_command_exits_non_zero_when_unhealthy():
    env = {**server_env(), "DATABASE_URL": f"postgres://postgres@127.0.0.1:{free_port()}/nothing",
           "OPSITE_HEALTH_CHECK_TIMEOUT_S": "1", "DATABASE_POOL_TIMEOUT": "1"}  # fmt: skip
    result = subprocess.run([sys.executable, "manage.py", "health", "--quiet"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 1 and result.stdout.strip() == "unhealthy"


def test_health_command_prints_the_report_and_exits_zero_when_healthy():
    result = subprocess.run([sys.executable, "manage.py", "health"], cwd=ROOT, env=server_env(),
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert '"database"' in result.stdout and '"status"' in result.stdout


@pytest.mark.django_db(transaction=True)
@pytest.mark.processes
def test_postgres_unreachable_makes_ready_503_while_live_stays_200(start_server, needs_postgres):
    server = start_server(
        {"DATABASE_URL": f"postgres://postgres@127.0.0.1:{free_port()}/nothing", "DATABASE_POOL_TIMEOUT": "1",
         "OPSITE_HEALTH_CHECK_TIMEOUT_S": "1", "OPSITE_HEALTH_READY_TIMEOUT_S": "1.5"},
        ready_path="/health/live",
    )  # fmt: skip
    started = time.monotonic()
    ready = httpx.get(f"{server.url}/health/ready", timeout=10)
    assert ready.status_code == 503 and ready.json()["checks"]["database"]["status"] == "failed"
    assert time.monotonic() - started < 3
    assert httpx.get(f"{server.url}/health/live", timeout=5).status_code == 200


@pytest.mark.django_db(transaction=True)
@pytest.mark.processes
def test_redis_down_leaves_the_service_degraded_but_serving(start_server, needs_redis, make_staff):
    staff = make_staff()
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    server = start_server({"REDIS_URL": dead_redis, "OPS_API_TOKENS": "t0ken-for-test"}, ready_path="/health/live")
    auth = {"Authorization": "Bearer t0ken-for-test"}
    detailed = httpx.get(f"{server.url}/health/detailed", headers=auth, timeout=15)
    assert detailed.status_code == 200 and detailed.json()["status"] == "degraded"
    assert detailed.json()["components"]["channel_layer"]["status"] == "failed"
    assert httpx.get(f"{server.url}/health/ready", timeout=10).status_code == 200
    ingest = httpx.post(f"{server.url}/api/v1/orders/events", timeout=15,
                        json={"type": "order.created", "order_id": "R1", "total_amount": "1", "items_count": 1},
                        headers={"Authorization": f"Bearer {staff.token}"})  # fmt: skip
    assert ingest.status_code == 201
