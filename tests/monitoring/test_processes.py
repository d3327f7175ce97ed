"""Monitoring across real processes: two web servers and a Celery worker, on Postgres and Redis."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.processes,
    pytest.mark.usefixtures("needs_redis", "needs_postgres"),
]
TOKEN = "ops-test-token-1"


def live_count(url: str) -> int:
    body = httpx.get(f"{url}/health/stats", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10).json()
    route = body["requests"]["5m"]["routes"].get("GET /health/live")
    return route["requests"] if route else 0


def test_stats_aggregate_every_web_process(start_server):
    env = {"OPSITE_METRICS_FLUSH_S": "0.2", "OPS_API_TOKENS": TOKEN}
    web_a, web_b = start_server(env), start_server(env)
    before = live_count(web_a.url)
    for _ in range(5):
        assert httpx.get(f"{web_a.url}/health/live").status_code == 200
    for _ in range(7):
        assert httpx.get(f"{web_b.url}/health/live").status_code == 200
    time.sleep(1)
    assert live_count(web_a.url) - before == 12
    assert live_count(web_b.url) - before == 12


def solo_worker(name: str) -> list[str]:
    return ["worker", "--pool", "solo", "--without-mingle", "--without-gossip", "-n", f"{name}-{time.time_ns()}@%h"]


def celery_component(url: str, until: Callable[[dict], bool] = lambda c: True) -> dict:
    """The detailed report's celery component once it is ok and ``until`` holds (or after 40 s)."""
    deadline = time.monotonic() + 40
    while True:
        report = httpx.get(f"{url}/health/detailed", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
        celery = report.json()["components"]["celery"]
        if (celery["status"] == "ok" and until(celery)) or time.monotonic() > deadline:
            return celery
        time.sleep(1)


def test_detailed_health_sees_a_running_celery_worker(start_server, start_celery):
    web = start_server({"OPS_API_TOKENS": TOKEN})
    start_celery(*solo_worker("test"))
    celery = celery_component(web.url)
    assert celery["status"] == "ok", celery
    assert celery["workers"] >= 1 and isinstance(celery["queue_depth"], int)


def test_metrics_in_multiprocess_mode(start_server, tmp_path):
    shared = tmp_path / "prometheus"
    shared.mkdir()
    env = {"PROMETHEUS_MULTIPROC_DIR": str(shared), "OPS_API_TOKENS": TOKEN}
    web_a, web_b = start_server(env), start_server(env)
    for web in (web_a, web_b):
        httpx.get(f"{web.url}/health/detailed", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    text = httpx.get(f"{web_a.url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10).text
    assert any(shared.iterdir()), "the processes wrote no metric files"
    gets = [line for line in text.splitlines() if line.startswith("django_cache_get_total")]
    assert gets and float(gets[0].split()[-1]) >= 2, "cache reads from both processes are summed"
    assert "opsite_http_request_rate" in text


def test_rabbitmq_as_the_broker(start_server, start_celery, needs_rabbitmq):
    """Web and worker on RabbitMQ instead of Redis: the worker answers, the queue depth is read,
    and a task sent through RabbitMQ runs."""
    from celery import Celery

    from monitoring.health.selectors import beat_heartbeat_age_s

    broker = {"CELERY_BROKER_URL": needs_rabbitmq}
    web = start_server({"OPS_API_TOKENS": TOKEN, **broker})
    start_celery(*solo_worker("rabbit"), extra_env=broker)
    assert beat_heartbeat_age_s() is None
    Celery(broker=needs_rabbitmq, set_as_current=False).send_task("monitoring.beat_heartbeat")
    celery = celery_component(web.url, until=lambda _: beat_heartbeat_age_s() is not None)
    assert celery["status"] == "ok" and celery["workers"] >= 1 and isinstance(celery["queue_depth"], int), celery
    age = beat_heartbeat_age_s()
    assert age is not None and age < 60, "the task sent through RabbitMQ did not run"


def test_a_real_workers_task_runs_reach_every_web_processs_metrics(start_server, start_celery, tmp_path):
    """A task sent while handling a request carries its traceparent to a real worker, whose log
    lines (every statement is logged here) carry the trace and the task id; the run is counted
    in the shared series, which a web process that never ran a task exposes."""
    from common.context import RequestState, current_request
    from common.tracing import TraceContext
    from monitoring.health.tasks import beat_heartbeat_task

    env = {"OPS_API_TOKENS": TOKEN, "OPSITE_METRICS_FLUSH_S": "0.3", "OPSITE_METRICS_CACHE_S": "0"}
    web = start_server(env)
    start_celery(*solo_worker("series"), extra_env={**env, "OPSITE_SLOW_QUERY_MS": "0", "LOG_LEVEL": "WARNING"})
    from prometheus_client.parser import text_string_to_metric_families

    def runs_and_durations() -> tuple[float, float]:
        text = httpx.get(f"{web.url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10).text
        samples = [s for f in text_string_to_metric_families(text) for s in f.samples
                   if s.labels.get("task") == beat_heartbeat_task.name]  # fmt: skip
        runs = sum(s.value for s in samples
                   if s.name == "opsite_celery_task_runs_total" and s.labels.get("outcome") == "success")  # fmt: skip
        counted = sum(s.value for s in samples if s.name == "opsite_celery_task_duration_seconds_count")
        return runs, counted

    def traced_lines() -> list[str]:
        worker_log = "\n".join(p.read_text() for p in tmp_path.glob("celery-*.log"))
        return [line for line in worker_log.splitlines() if f"[{sent.id} trace={trace.trace_id}]" in line]

    from common.series import shared

    shared.flush()  # this process's own counts from earlier tests, in the same store
    before = runs_and_durations()
    trace = TraceContext.from_header("00-9af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    token = current_request.set(RequestState("series-req-0001", trace))
    try:
        sent = beat_heartbeat_task.delay()  # its result is not kept: the test waits on the series instead
    finally:
        current_request.reset(token)

    deadline = time.monotonic() + 40
    after = runs_and_durations()
    while (after[0] <= before[0] or not traced_lines()) and time.monotonic() < deadline:
        time.sleep(0.5)
        after = runs_and_durations()
    assert after[0] >= before[0] + 1 and after[1] >= before[1] + 1, (before, after)
    traced = traced_lines()
    assert traced and "slow query" in traced[0], "\n".join(p.read_text() for p in tmp_path.glob("celery-*.log"))[-3000:]
