"""Graceful shutdown with real servers: on SIGTERM ready turns 503 at once while the process
keeps serving through the drain, in-flight requests finish, sockets close with 1012."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.conftest import ROOT, free_port, server_env, wait_ready

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.processes]

TOKEN = "shutdown-test-token"


def slow_request(url: str, results: list[Any]) -> None:
    """/health/detailed waits about a second for Celery workers that are not there."""
    started = time.monotonic()
    response = httpx.get(f"{url}/health/detailed", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
    results.append((response.status_code, time.monotonic() - started))


def drain_and_check(url: str, process: subprocess.Popen[bytes], during: Any = None) -> None:
    in_flight: list[Any] = []
    request = threading.Thread(target=slow_request, args=(url, in_flight))
    request.start()
    time.sleep(0.3)
    process.send_signal(signal.SIGTERM)
    ready = httpx.get(f"{url}/health/ready", timeout=5)
    assert ready.status_code == 503 and ready.json()["reason"] == "shutting_down"
    assert httpx.get(f"{url}/health/live", timeout=5).status_code == 200  # still serving
    if during is not None:
        during()
    request.join(timeout=30)
    assert in_flight and in_flight[0][0] == 200, in_flight  # the request under way finished
    assert in_flight[0][1] > 0.3, "the request was over before the signal: nothing was in flight"
    process.wait(timeout=30)


def test_uvicorn_drains_then_closes_sockets_with_1012(make_staff, start_server, needs_redis):
    staff = make_staff()
    server = start_server({"OPSITE_DRAIN_S": "2", "OPS_API_TOKENS": TOKEN})
    socket = connect(server.url.replace("http://", "ws://") + f"/ws/restaurants/{staff.restaurant.slug}/orders/",
                     additional_headers={"Cookie": staff.cookie, "Origin": server.url})  # fmt: skip
    assert json.loads(socket.recv(timeout=5))["type"] == "hello"

    def still_open() -> None:
        socket.send(json.dumps({"type": "ping"}))
        assert json.loads(socket.recv(timeout=5))["type"] == "pong"

    drain_and_check(server.url, server.process, during=still_open)
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            socket.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012


def test_gunicorn_drains_then_stops(tmp_path, needs_redis):
    port = free_port()
    env = {**server_env(), "OPSITE_DRAIN_S": "2", "OPS_API_TOKENS": TOKEN}
    log = tmp_path / "gunicorn.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "opsite.wsgi:application", "-b", f"127.0.0.1:{port}", "-w", "1"],
        cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process, log)
        drain_and_check(url, process)
        assert process.returncode == 0
    finally:
        if process.poll() is None:
            process.kill()
