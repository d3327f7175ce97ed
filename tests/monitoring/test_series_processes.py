"""The series as production runs them: gunicorn with two workers sharing PROMETHEUS_MULTIPROC_DIR.
Counters sum over the workers; process and Python series cover both; an exemplar recorded by
one worker is served by the other (the one worker that took the request is stopped while the
other answers the scrape)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import psutil
import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from tests.conftest import ROOT, free_port, server_env

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.processes, pytest.mark.timeout(90),
              pytest.mark.usefixtures("needs_postgres")]  # fmt: skip

TOKEN = "series-token"
TRACE = "5bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture
def two_workers(tmp_path) -> Iterator[tuple[str, list[psutil.Process], psutil.Process]]:
    directory = tmp_path / "metrics"
    directory.mkdir()
    port = free_port()
    env = {**server_env(), "OPS_API_TOKENS": TOKEN, "PROMETHEUS_MULTIPROC_DIR": str(directory),
           "OPSITE_EXEMPLAR_WRITE_S": "0.3", "OPSITE_SERIES_APPLY_S": "0.2", "OPSITE_METRICS_CACHE_S": "0"}  # fmt: skip
    log = tmp_path / "gunicorn.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "opsite.wsgi:application", "-b", f"127.0.0.1:{port}", "-w", "2"],
        cwd=ROOT, env=env, start_new_session=True, stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    master = psutil.Process(process.pid)
    try:
        deadline = time.monotonic() + 30
        while len(master.children()) < 2 or not _ready(url):
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield url, master.children(), master
    finally:
        for child in master.children():
            with contextlib.suppress(psutil.NoSuchProcess):
                child.resume()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _ready(url: str) -> bool:
    try:
        return httpx.get(url + "/health/live", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def scrape(url: str) -> dict[str, object]:
    response = httpx.get(url + "/metrics", timeout=15, headers={
        "Authorization": f"Bearer {TOKEN}", "Accept": "application/openmetrics-text; version=1.0.0"})  # fmt: skip
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    return {f.name: f for f in text_string_to_metric_families(response.text)}


def test_two_workers_share_counters_process_series_and_exemplars(two_workers):
    url, (a, b), _ = two_workers
    for _ in range(20):
        assert httpx.get(url + "/health/live", timeout=5).status_code == 200  # a new connection each

    a.suspend()  # only b can take the next request
    try:
        served = httpx.get(url + "/health/live", timeout=5,
                           headers={"X-Request-ID": "served-by-b-0001", "traceparent": f"00-{TRACE}-00f067aa0ba902b7-01"})  # fmt: skip
        assert served.status_code == 200
        time.sleep(1.0)  # b writes its exemplars to the shared directory
    finally:
        a.resume()
    b.suspend()  # the scrape is answered by a, which never saw that request
    try:
        found = scrape(url)
    finally:
        b.resume()

    requests = [s for s in found["opsite_http_requests"].samples  # type: ignore[attr-defined]
                if s.name == "opsite_http_requests_total" and s.labels["route"] == "GET /health/live"]  # fmt: skip
    assert sum(s.value for s in requests) >= 21  # both workers' counts (the readiness checks add a few)

    latency = found["opsite_http_request_latency_seconds"].samples  # type: ignore[attr-defined]
    ids = [s.exemplar.labels for s in latency if s.exemplar is not None]
    assert {"request_id": "served-by-b-0001", "trace_id": TRACE} in ids

    pids = {str(a.pid), str(b.pid)}
    for name in ("process_resident_memory_bytes", "process_start_time_seconds", "process_cpu_seconds"):
        assert pids <= {s.labels["pid"] for s in found[name].samples}, name  # type: ignore[attr-defined]
    assert {s.labels["pid"] for s in found["python_gc_collections"].samples} >= pids  # type: ignore[attr-defined]
    assert "python_info" in found


def test_a_dead_workers_exemplar_file_goes_and_its_counts_stay(two_workers):
    url, (a, _), master = two_workers
    for _ in range(10):
        httpx.get(url + "/health/live", timeout=5)
    time.sleep(0.8)
    before = sum(s.value for s in scrape(url)["opsite_http_requests"].samples  # type: ignore[attr-defined]
                 if s.labels.get("route") == "GET /health/live")  # fmt: skip
    directory = next(p for p in (a.environ().get("PROMETHEUS_MULTIPROC_DIR"),) if p)
    a.kill()  # gunicorn starts a replacement and runs its child_exit hook for the dead one
    deadline = time.monotonic() + 20
    while os.path.exists(f"{directory}/opsite_{a.pid}.json") or len(master.children()) < 2:
        assert time.monotonic() < deadline, os.listdir(directory)
        time.sleep(0.2)
    after = sum(s.value for s in scrape(url)["opsite_http_requests"].samples  # type: ignore[attr-defined]
                if s.labels.get("route") == "GET /health/live")  # fmt: skip
    assert after >= before  # a counter never goes back because a worker died
    assert str(a.pid) not in {s.labels["pid"] for s in scrape(url)["process_start_time_seconds"].samples}  # type: ignore[attr-defined]
