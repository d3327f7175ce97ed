"""Every kind of entry point as the very first request of a fresh process, as in production:
a new gunicorn worker or uvicorn process, nothing warmed by an earlier request. Each must
answer within a bound, a second, different request must answer too, and SIGTERM must stop
the process within the drain plus a grace. With and without PROMETHEUS_MULTIPROC_DIR."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from tests.conftest import ROOT, Staff, free_port, server_env

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.processes,
    pytest.mark.usefixtures("needs_redis", "needs_postgres"),
]

TOKEN = "cold-start-token"
DRAIN_S = 1.0
FIRST_ANSWER_S = 20.0  # process start-up (Django set-up, first pooled connection) included
STOP_GRACE_S = 10.0
CSRF = "c" * 32  # Django accepts an unmasked 32-character secret in both cookie and form


@dataclass
class Cold:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://")


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def cold_server(tmp_path: Path) -> Iterator[Callable[[str, bool], Cold]]:
    """Starts a server and waits only until its port accepts connections: no HTTP request
    reaches the process before the test's own."""
    started: list[Cold] = []

    def start(kind: str, multiprocess: bool, extra_env: dict[str, str] | None = None) -> Cold:
        port = free_port()
        env = {**server_env(), "OPS_API_TOKENS": TOKEN, "OPSITE_DRAIN_S": str(DRAIN_S), **(extra_env or {})}
        if multiprocess:
            directory = tmp_path / f"metrics-{port}"
            directory.mkdir()
            env["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
        if kind == "gunicorn":
            command = ["-m", "gunicorn", "opsite.wsgi:application", "-b", f"127.0.0.1:{port}", "-w", "1"]
        else:
            command = [
                "-m",
                "uvicorn",
                "opsite.asgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-proxy-headers",
            ]
        log = tmp_path / f"{kind}-{port}.log"
        # its own process group, so a wedged worker is killed with its master at the end
        process = subprocess.Popen([sys.executable, *command], cwd=ROOT, env=env, start_new_session=True,
                                   stdout=log.open("wb"), stderr=subprocess.STDOUT)  # fmt: skip
        server = Cold(url=f"http://127.0.0.1:{port}", process=process, log=log)
        started.append(server)
        deadline = time.monotonic() + 30
        while not _listening(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{kind} did not start:\n{log.read_text()}")
            time.sleep(0.05)
        return server

    yield start
    for server in started:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait()


def _metrics(server: Cold, staff: Staff) -> None:
    response = httpx.get(f"{server.url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"},
                         timeout=FIRST_ANSWER_S)  # fmt: skip
    assert response.status_code == 200, response.text
    assert "opsite_orders_today" in response.text


def _ingest(server: Cold, staff: Staff) -> None:
    response = httpx.post(
        f"{server.url}/api/v1/orders/events",
        headers={"Authorization": f"Bearer {staff.token}"},
        json={"type": "order.created", "order_id": f"C-{time.time_ns()}", "total_amount": "3.50", "items_count": 1},
        timeout=FIRST_ANSWER_S,
    )
    assert response.status_code == 201, response.text


def _login(server: Cold, staff: Staff) -> None:
    response = httpx.post(
        f"{server.url}/accounts/login/",
        data={"username": staff.user.username, "password": "not-the-password", "csrfmiddlewaretoken": CSRF},
        cookies={"csrftoken": CSRF},
        timeout=FIRST_ANSWER_S,
    )
    assert response.status_code == 200 and "username" in response.text, response.status_code


def _detailed(server: Cold, staff: Staff) -> None:
    response = httpx.get(f"{server.url}/health/detailed", headers={"Authorization": f"Bearer {TOKEN}"},
                         timeout=FIRST_ANSWER_S)  # fmt: skip
    assert response.status_code in (200, 503) and "components" in response.json()


def _ops_api(server: Cold, staff: Staff) -> None:
    response = httpx.get(f"{server.url}/ops/api/live", headers={"Cookie": staff.cookie}, timeout=FIRST_ANSWER_S)
    assert response.status_code == 200, response.text


def _socket(server: Cold, staff: Staff) -> None:
    url = f"{server.ws_url()}/ws/restaurants/{staff.restaurant.slug}/orders/"
    with connect(url, additional_headers={"Cookie": staff.cookie, "Origin": server.url},
                 open_timeout=FIRST_ANSWER_S) as ws:  # fmt: skip
        assert json.loads(ws.recv(timeout=FIRST_ANSWER_S))["type"] == "hello"


ENTRY_POINTS: dict[str, Callable[[Cold, Staff], None]] = {
    "metrics": _metrics,
    "ingest": _ingest,
    "login": _login,
    "health_detailed": _detailed,
    "ops_api": _ops_api,
    "socket": _socket,
}


def _bounded(call: Callable[[], Any], what: str, server: Cold) -> None:
    started = time.monotonic()
    try:
        call()
    except httpx.TimeoutException as exc:
        raise AssertionError(f"{what} got no answer within {FIRST_ANSWER_S} s:\n{server.log.read_text()}") from exc
    assert time.monotonic() - started < FIRST_ANSWER_S, what


@pytest.mark.timeout(90)
@pytest.mark.parametrize("multiprocess", [False, True], ids=["single", "multiproc"])
@pytest.mark.parametrize(
    ("entry", "kind"),
    # gunicorn serves WSGI only: sockets are uvicorn's
    [
        (entry, kind)
        for entry in ENTRY_POINTS
        for kind in ("gunicorn", "uvicorn")
        if (entry, kind) != ("socket", "gunicorn")
    ],
)
def test_a_fresh_process_answers_its_first_request_then_others_then_stops(
    entry: str, kind: str, multiprocess: bool, cold_server: Any, make_staff: Any
) -> None:
    staff = make_staff()
    staff.user.is_superuser = staff.user.is_staff = True
    staff.user.save(update_fields=["is_superuser", "is_staff"])
    server = cold_server(kind, multiprocess)

    _bounded(lambda: ENTRY_POINTS[entry](server, staff), f"first request ({entry})", server)
    second = "ingest" if entry != "ingest" else "metrics"
    _bounded(lambda: ENTRY_POINTS[second](server, staff), f"second request ({second})", server)
    live = httpx.get(f"{server.url}/health/live", timeout=5)
    assert live.status_code == 200

    server.process.send_signal(signal.SIGTERM)
    try:
        server.process.wait(timeout=DRAIN_S + STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{kind} did not stop within {DRAIN_S + STOP_GRACE_S} s of SIGTERM:\n{server.log.read_text()}")
    # uvicorn re-raises the signal it caught once its graceful stop is done
    clean = {0} if kind == "gunicorn" else {0, -signal.SIGTERM}
    log = server.log.read_text()
    assert server.process.returncode in clean, log
    assert kind == "gunicorn" or "Finished server process" in log, log


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["gunicorn", "uvicorn"])
def test_a_fresh_process_reports_itself_and_watches_alerts_before_any_request(kind, cold_server):
    """Its loops start with the process, not with a first request."""
    from monitoring.health.selectors import WATCHDOG
    from monitoring.models import Heartbeat, NodeReport

    cold_server(kind, False, {"OPSITE_NODE_REPORT_S": "1", "OPSITE_ALERT_WATCHDOG_S": "1"})
    deadline = time.monotonic() + 30
    while not (NodeReport.objects.filter(role="web").exists() and Heartbeat.objects.filter(name=WATCHDOG).exists()):
        assert time.monotonic() < deadline, "no node report or watchdog pass from a process that served nothing"
        time.sleep(0.2)


FIRST_USE = {
    "asgi": (
        "import asyncio\n"
        "from channels.testing import HttpCommunicator\n"
        "from opsite.asgi import application\n"
        "from monitoring.nodes.reports import reporter\n"
        "before = reporter.loop.started\n"
        "request = HttpCommunicator(application, 'GET', '/health/live', headers=[(b'host', b'localhost')])\n"
        "response = asyncio.run(request.get_response(timeout=10))\n"
        "print(before, response['status'], reporter.loop.started)\n"
    ),
    "wsgi": (
        "from wsgiref.util import setup_testing_defaults\n"
        "from opsite.wsgi import application\n"
        "from monitoring.nodes.reports import reporter\n"
        "before = reporter.loop.started\n"
        "environ = {'PATH_INFO': '/health/live', 'REQUEST_METHOD': 'GET'}\n"
        "setup_testing_defaults(environ)\n"
        "status = []\n"
        "body = b''.join(application(environ, lambda s, h, *a: status.append(s)))\n"
        "print(before, status[0].split()[0], reporter.loop.started)\n"
    ),
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("interface", sorted(FIRST_USE))
def test_a_server_without_start_hooks_starts_the_loops_with_its_first_request(interface):
    """daphne, runserver or another WSGI server: no lifespan, no post-fork hook; the process's
    node report starts with the first request it serves."""
    env = {**server_env(), "OPSITE_NODE_REPORT_S": "1"}
    done = subprocess.run([sys.executable, "-c", FIRST_USE[interface]], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=50)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[-3:] == ["False", "200", "True"], done.stdout
