"""Outbound calls through one breaker and retry policy: shared by every process through Redis,
one trial when half-open, transient failures retried and refusals not, the S3 backup store
failing fast once its circuit opens, and the circuits shown in /health/dependencies, /metrics
and the admin, where they can be closed."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid

import httpx
import pytest
from django.contrib.auth.models import Permission

from backups.selectors import STORE_BREAKER
from backups.services import BackupError, backup_create
from common.resilience import (
    BreakerPolicy,
    CircuitOpen,
    RetryPolicy,
    call_through,
    circuit,
    circuit_reset,
    retried,
)
from monitoring.alerts.delivery import channels_announce
from monitoring.alerts.models import NotificationChannel
from tests.conftest import ROOT, free_port, s3_storages, server_env

POLICY = BreakerPolicy(failures=2, reset_s=0.5)


def failing() -> None:
    raise OSError("connection refused")


def open_circuit(name: str, policy: BreakerPolicy = POLICY) -> None:
    for _ in range(policy.failures):
        with pytest.raises(OSError):
            call_through(name, failing, breaker=policy)


@pytest.fixture
def name() -> str:
    return f"test:{uuid.uuid4().hex[:8]}"


def test_it_opens_after_the_failures_in_a_row_fails_fast_then_a_trial_closes_it(name):
    calls = []
    open_circuit(name)
    with pytest.raises(CircuitOpen):
        call_through(name, lambda: calls.append(1), breaker=POLICY)
    assert calls == [] and circuit(name)["state"] == "open"
    time.sleep(0.6)
    assert circuit(name)["state"] == "half_open"
    call_through(name, lambda: calls.append(1), breaker=POLICY)
    assert calls == [1] and circuit(name) == {"name": name, "state": "closed", "failures": 0, "open_until": None}


def test_half_open_lets_exactly_one_trial_through(name):
    open_circuit(name)
    time.sleep(0.6)
    calls, refused = [], []

    def trial() -> None:
        try:
            call_through(name, lambda: (calls.append(1), time.sleep(0.3)), breaker=POLICY)
        except CircuitOpen:
            refused.append(1)

    threads = [threading.Thread(target=trial) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert (len(calls), len(refused)) == (1, 5)


def test_the_state_is_shared_by_every_process_and_a_reset_anywhere_closes_it(name, needs_redis):
    open_circuit(name, BreakerPolicy(failures=2, reset_s=120))
    read = f"from common.resilience import circuit; print(circuit({name!r})['state'])"
    other = subprocess.run([sys.executable, "manage.py", "shell", "--no-imports", "-c", read], cwd=ROOT,
                           env=server_env(), capture_output=True, text=True, timeout=60)  # fmt: skip
    assert other.stdout.strip() == "open", other.stderr
    reset = f"from common.resilience import circuit_reset; circuit_reset({name!r})"
    subprocess.run([sys.executable, "manage.py", "shell", "--no-imports", "-c", reset], cwd=ROOT, env=server_env(),
                   check=True, timeout=60)  # fmt: skip
    assert circuit(name)["state"] == "closed"


def test_transient_failures_are_retried_and_refusals_are_not(sink):
    answers = iter([503, 503, 200])  # what each request is answered, set as it arrives
    sink.during = lambda: setattr(sink, "status", next(answers, 200))

    def post() -> int:
        response = httpx.post(sink.url, json={}, timeout=2)
        response.raise_for_status()
        return response.status_code

    assert retried(post, RetryPolicy(attempts=3, backoff_s=0.01)) == 200
    assert len(sink.received) == 3  # 503, 503, then 200
    sink.during, sink.status = None, 400
    with pytest.raises(httpx.HTTPStatusError):
        retried(post, RetryPolicy(attempts=3, backoff_s=0.01))
    assert len(sink.received) == 4  # a refusal is not tried again


@pytest.mark.django_db(transaction=True)
def test_an_announcement_is_retried_through_a_blip(sink):
    NotificationChannel.objects.create(name="hook", kind="webhook", target=sink.url)
    answers = iter([502, 200])
    sink.during = lambda: setattr(sink, "status", next(answers, 200))
    payload = {"rule": "r", "labels": {}, "value": 1.0, "unit": "", "severity": "warning", "status": "firing",
               "metric_label": "m", "comparison": ">", "threshold": 0.0}  # fmt: skip
    assert channels_announce(payload) == {"hook": "sent"}
    assert len(sink.received) == 2


@pytest.mark.django_db(transaction=True)
def test_backups_to_an_unreachable_s3_store_fail_fast_once_its_circuit_opens(settings, tmp_path, needs_postgres,
                                                                              admin_client):  # fmt: skip
    settings.OPSITE_BACKUP_DIR = tmp_path
    settings.STORAGES = s3_storages(f"http://127.0.0.1:{free_port()}")
    settings.OPSITE_DEPENDENCY_FAILURES = 2
    settings.OPSITE_DEPENDENCY_RESET_S = 60
    circuit_reset(STORE_BREAKER)
    try:
        for _ in range(2):
            with pytest.raises(BackupError):
                backup_create(reason="test")
        started = time.monotonic()
        with pytest.raises(BackupError, match="circuit open"):
            backup_create(reason="test")
        assert time.monotonic() - started < 5
        body = admin_client.get("/health/dependencies").json()
        store = {row["name"]: row for row in body["circuits"]}[STORE_BREAKER]
        assert store["state"] == "open" and store["failures"] == 2
        assert {row["name"]: row for row in body["dependencies"]}["backup_storage"]["circuit"] == "open"
        metrics = admin_client.get("/metrics").content.decode()
        assert f'opsite_circuit_state{{circuit="{STORE_BREAKER}"}} 2.0' in metrics
    finally:
        circuit_reset(STORE_BREAKER)


@pytest.mark.django_db(transaction=True)
def test_the_admin_lists_circuits_and_closes_them(admin_client, client, django_user_model, name, sink):
    open_circuit(name)
    channel = NotificationChannel.objects.create(name="pager", kind="webhook", target=sink.url,
                                                 consecutive_failures=9, open_until="2100-01-01T00:00Z")  # fmt: skip
    page = admin_client.get("/admin/monitoring/notificationchannel/circuits/")
    assert page.status_code == 200
    html = page.content.decode()
    assert name in html and "channel:pager" in html
    assert admin_client.post("/admin/monitoring/notificationchannel/circuits/", {"circuit": name}).status_code == 302
    assert circuit(name)["state"] == "closed"
    admin_client.post("/admin/monitoring/notificationchannel/", {"action": "close_circuits",
                                                                  "_selected_action": [channel.pk]})  # fmt: skip
    channel.refresh_from_db()
    assert (channel.consecutive_failures, channel.open_until) == (0, None)
    reader = django_user_model.objects.create_user("reader", password="pw", is_staff=True)
    reader.user_permissions.add(Permission.objects.get(codename="view_notificationchannel"))
    client.force_login(reader)
    open_circuit(name, BreakerPolicy(failures=2, reset_s=120))
    assert client.get("/admin/monitoring/notificationchannel/circuits/").status_code == 200
    assert client.post("/admin/monitoring/notificationchannel/circuits/", {"circuit": name}).status_code == 403
    assert circuit(name)["state"] == "open"


@pytest.mark.django_db(transaction=True)
def test_announcements_count_on_the_channels_own_breaker(sink, settings):
    settings.OPSITE_ALERT_CIRCUIT_FAILURES = 1
    channel = NotificationChannel.objects.create(name="hook", kind="webhook", target=sink.url)
    sink.status = 500
    payload = {"rule": "r", "labels": {}, "value": 1.0, "unit": "", "severity": "warning", "status": "firing",
               "metric_label": "m", "comparison": ">", "threshold": 0.0}  # fmt: skip
    assert channels_announce(payload)["hook"].startswith("failed")
    channel.refresh_from_db()
    assert channel.consecutive_failures == 1 and channel.open_until is not None
    tried = len(sink.received)
    assert channels_announce(payload) == {"hook": "skipped: the channel's circuit is open"}
    assert len(sink.received) == tried
