"""The Prometheus-native series: counters and histograms per route, sockets, ingest, delivery,
tasks and backups; OpenMetrics with exemplars; bounded labels; slow requests kept."""

from __future__ import annotations

import asyncio
import random
import string

import pytest
from django.test import AsyncClient
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from common import sockets
from common.series import exemplars, pending, shared
from monitoring.models import SlowRequest
from monitoring.requests import series as request_series
from monitoring.requests.slow import buffer as slow_requests
from realtime import series as feed_series
from tests.realtime.conftest import event, next_frame, staff_feed

pytestmark = pytest.mark.timeout(60)

OWN = [sockets.FRAMES, sockets.FRAME_BYTES, sockets.CONNECTS, sockets.CLOSES, request_series.REQUESTS,
       request_series.ERRORS, request_series.LATENCY.histogram, request_series.QUERIES, request_series.QUERY_SECONDS,
       feed_series.INGESTED, feed_series.DELIVERY.histogram]  # fmt: skip

OPENMETRICS = "application/openmetrics-text; version=1.0.0"
INBOUND = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def value(name: str, **labels: str) -> float:
    """A sample of opsite's own per-process series, read without running the registry's other
    collectors (which read the database, not allowed from an event loop)."""
    pending.apply()
    for metric in OWN:
        for family in metric.collect():
            for sample in family.samples:
                if sample.name == name and sample.labels == labels:
                    return float(sample.value)
    return 0.0


def scrape(client, accept: str = "") -> str:
    response = client.get("/metrics", HTTP_ACCEPT=accept) if accept else client.get("/metrics")
    assert response.status_code == 200
    return response.content.decode()


def families(text: str) -> dict[str, object]:
    return {f.name: f for f in text_string_to_metric_families(text)}


@pytest.fixture(autouse=True)
def _fresh_figures(settings):
    settings.OPSITE_METRICS_CACHE_S = 0


@pytest.mark.django_db
def test_requests_are_counted_per_route_and_status_class(client):
    route = "GET /health/live"
    before = value("opsite_http_requests_total", route=route, status_class="2xx")
    latency_before = value("opsite_http_request_latency_seconds_count", route=route)
    for _ in range(3):
        client.get("/health/live")
    assert value("opsite_http_requests_total", route=route, status_class="2xx") == before + 3
    assert value("opsite_http_request_latency_seconds_count", route=route) == latency_before + 3
    assert 'opsite_http_requests_total{route="GET /health/live",status_class="2xx"}' in scrape(client)


@pytest.mark.urls("tests.monitoring.urls")
def test_errors_and_client_errors_are_told_apart(client):
    client.raise_request_exception = False
    crash, missing = "GET /test/crash/", "GET /test/not-found/"
    errors_before = value("opsite_http_errors_total", route=crash)
    client.get("/test/crash/")
    client.get("/test/not-found/")
    assert value("opsite_http_errors_total", route=crash) == errors_before + 1
    assert value("opsite_http_requests_total", route=crash, status_class="5xx") >= 1
    assert value("opsite_http_requests_total", route=missing, status_class="4xx") >= 1
    assert value("opsite_http_errors_total", route=missing) == 0


@pytest.mark.django_db
@pytest.mark.urls("tests.monitoring.urls")
def test_queries_and_their_time_are_counted_per_route(client):
    route = "GET /test/twenty-queries/"
    before = value("opsite_db_queries_total", route=route)
    seconds_before = value("opsite_db_query_seconds_total", route=route)
    client.get("/test/twenty-queries/")
    assert value("opsite_db_queries_total", route=route) == before + 20
    assert value("opsite_db_query_seconds_total", route=route) > seconds_before


def test_a_client_cannot_create_series(client):
    """Random paths and methods land in bounded labels: the route pattern or <unmatched>, OTHER."""

    def routes() -> set[str]:
        pending.apply()
        return {s.labels["route"] for m in request_series.REQUESTS.collect() for s in m.samples}

    client.get("/health/live")
    before = routes()
    for _ in range(300):
        junk = "".join(random.choices(string.ascii_letters + string.digits, k=24))
        client.generic(random.choice(["GET", "POST", "PROPFIND", junk[:8].upper()]), f"/{junk}/{junk}")
    assert routes() - before <= {"GET <unmatched>", "POST <unmatched>", "OTHER <unmatched>"}


@pytest.mark.django_db
def test_openmetrics_carries_the_newest_requests_ids_as_exemplars(client):
    response = client.get("/health/live", HTTP_X_REQUEST_ID="exemplar-req-0001", HTTP_TRACEPARENT=INBOUND)
    assert response.status_code == 200
    text = scrape(client, OPENMETRICS)
    found = families(text)["opsite_http_request_latency_seconds"]
    marked = [s for s in found.samples  # type: ignore[attr-defined]
              if s.exemplar is not None and s.exemplar.labels.get("request_id") == "exemplar-req-0001"]  # fmt: skip
    assert len(marked) == 1  # the one bucket the request fell in
    assert marked[0].labels["route"] == "GET /health/live"
    assert marked[0].exemplar.labels == {"request_id": "exemplar-req-0001", "trace_id": INBOUND.split("-")[1]}
    assert float(marked[0].labels["le"]) >= marked[0].exemplar.value
    assert text.rstrip().endswith("# EOF")
    # the classic text format has no exemplars
    assert "exemplar-req-0001" not in scrape(client)


@pytest.mark.django_db
def test_a_long_request_id_is_shortened_to_keep_the_exemplar_within_openmetrics_limits(client):
    long_id = "r" * 128
    client.get("/health/live", HTTP_X_REQUEST_ID=long_id)
    found = families(scrape(client, OPENMETRICS))["opsite_http_request_latency_seconds"]
    (marked,) = [s for s in found.samples if s.exemplar is not None  # type: ignore[attr-defined]
                 and s.exemplar.labels.get("request_id", "").startswith("rrrr")]  # fmt: skip
    runes = sum(len(k) + len(v) for k, v in marked.exemplar.labels.items())
    assert runes <= 128


@pytest.mark.django_db(transaction=True)
async def test_sockets_count_frames_bytes_connects_and_closes(make_staff):
    connects = value("opsite_ws_connects_total", socket="feed")
    hellos = value("opsite_ws_frames_sent_total", socket="feed", type="hello")
    hello_bytes = value("opsite_ws_sent_bytes_total", socket="feed", type="hello")
    bad = value("opsite_ws_closes_total", socket="feed", code="4400")
    _, feed, _ = await staff_feed(make_staff)
    assert value("opsite_ws_connects_total", socket="feed") == connects + 1
    assert value("opsite_ws_frames_sent_total", socket="feed", type="hello") == hellos + 1
    assert value("opsite_ws_sent_bytes_total", socket="feed", type="hello") > hello_bytes
    for _ in range(21):  # past OPSITE_FEED_MAX_BAD_FRAMES (20): closed with 4400
        await feed.send_to(text_data="not json")
    while (await feed.receive_output(timeout=3))["type"] != "websocket.close":
        pass
    await feed.disconnect()
    assert value("opsite_ws_closes_total", socket="feed", code="4400") == bad + 1
    assert value("opsite_ws_frames_sent_total", socket="feed", type="error") >= 1


@pytest.mark.django_db(transaction=True)
async def test_a_client_close_code_outside_the_known_set_counts_as_other(make_staff):
    other = value("opsite_ws_closes_total", socket="feed", code="other")
    _, feed, _ = await staff_feed(make_staff)
    await feed.disconnect(code=4999)
    await asyncio.sleep(0.1)
    assert value("opsite_ws_closes_total", socket="feed", code="other") == other + 1


@pytest.mark.django_db(transaction=True)
async def test_delivery_latency_is_observed_per_frame_with_the_ingest_request_as_exemplar(make_staff):
    created = value("opsite_events_ingested_total", type="order.paid")
    delivered = value("opsite_feed_delivery_latency_seconds_count")
    frames = value("opsite_ws_frames_sent_total", socket="feed", type="order.paid")
    sent_bytes = value("opsite_ws_sent_bytes_total", socket="feed", type="order.paid")
    staff, feed, _ = await staff_feed(make_staff)
    try:
        response = await AsyncClient().post(
            "/api/v1/orders/events", event("d-1", "order.paid"), content_type="application/json",
            headers={"Authorization": f"Bearer {staff.token}", "traceparent": INBOUND, "X-Request-ID": "deliver-0001"},
        )  # fmt: skip
        assert response.status_code == 201
        assert (await next_frame(feed))["order_id"] == "d-1"
    finally:
        await feed.disconnect()
    assert value("opsite_events_ingested_total", type="order.paid") == created + 1
    assert value("opsite_feed_delivery_latency_seconds_count") == delivered + 1
    # the live frame, written with the message the hub built, still counts as a frame sent
    assert value("opsite_ws_frames_sent_total", socket="feed", type="order.paid") == frames + 1
    assert value("opsite_ws_sent_bytes_total", socket="feed", type="order.paid") > sent_bytes + 100
    seconds = value("opsite_feed_delivery_latency_seconds_sum")
    assert seconds > 0
    newest = max((v for k, v in exemplars.merged().items() if k[0] == "opsite_feed_delivery_latency_seconds"),
                 key=lambda hit: hit[2])  # fmt: skip
    assert newest[0] == {"request_id": "deliver-0001", "trace_id": INBOUND.split("-")[1]}
    assert 0 <= newest[1] < 5


def test_a_repeated_idempotency_key_is_not_counted_again(client, make_staff):
    staff = make_staff()
    before = value("opsite_events_ingested_total", type="order.created")
    body = event("i-1", idempotency_key="same-key-1")
    for _ in range(3):
        client.post("/api/v1/orders/events", body, content_type="application/json",
                    HTTP_AUTHORIZATION=f"Bearer {staff.token}")  # fmt: skip
    assert value("opsite_events_ingested_total", type="order.created") == before + 1


@pytest.mark.django_db(transaction=True)
def test_task_runs_and_durations_are_cluster_wide_series(client, settings):
    from monitoring.health.tasks import beat_heartbeat_task as beat_heartbeat

    settings.OPS_API_TOKENS = ["t"]
    beat_heartbeat.apply()
    shared.flush()
    found = families(scrape(client, OPENMETRICS))
    runs = {(s.labels["task"], s.labels["outcome"]): s.value
            for s in found["opsite_celery_task_runs"].samples}  # type: ignore[attr-defined]  # fmt: skip
    assert runs.get((beat_heartbeat.name, "success"), 0) >= 1
    durations = [s for s in found["opsite_celery_task_duration_seconds"].samples  # type: ignore[attr-defined]
                 if s.labels.get("task") == beat_heartbeat.name and s.name.endswith("_count")]  # fmt: skip
    assert durations and durations[0].value >= 1


@pytest.mark.django_db(transaction=True)
def test_a_task_runs_inside_its_own_trace_continuing_the_senders(settings, caplog):
    from common.context import current_request
    from monitoring.health.tasks import beat_heartbeat_task as beat_heartbeat

    seen = {}

    def spy(*args, **kwargs):
        state = current_request.get()
        seen["trace"] = state.trace_id if state else None
        seen["request_id"] = state.request_id if state else None

    from celery.signals import task_success

    task_success.connect(spy, weak=False)
    try:
        result = beat_heartbeat.apply(headers={"traceparent": INBOUND})
    finally:
        task_success.disconnect(spy)
    assert seen == {"trace": INBOUND.split("-")[1], "request_id": result.id}
    assert current_request.get() is None  # the task's state is gone after the run


@pytest.mark.django_db
def test_the_process_and_python_series_are_present_without_the_shared_directory(client):
    names = set(families(scrape(client, OPENMETRICS)))
    assert {"process_resident_memory_bytes", "process_start_time_seconds", "python_info",
            "python_gc_collections", "opsite_uptime_seconds"} <= names  # fmt: skip


@pytest.mark.django_db(transaction=True)
@pytest.mark.urls("tests.monitoring.urls")
def test_a_slow_request_is_kept_with_its_statements_and_listed_for_its_time(client, settings, django_user_model):
    settings.OPSITE_SLOW_REQUEST_MS = 0
    from django.test import Client

    fresh = Client()  # a handler built with the setting above
    response = fresh.get("/test/twenty-queries/?token=secret-value", HTTP_TRACEPARENT=INBOUND)
    slow_requests.flush()
    row = SlowRequest.objects.get(request_id=response["X-Request-ID"])
    assert row.route == "GET /test/twenty-queries/" and row.trace_id == INBOUND.split("-")[1]
    assert row.queries == 20 and row.path == "/test/twenty-queries/"  # no query string kept
    (statement,) = [s for s in row.statements if s["count"] == 20]
    assert "?" in statement["sql"] or "%s" in statement["sql"]
    assert "secret-value" not in str(row.statements) + row.path

    admin = django_user_model.objects.create_superuser("root-slow", "r@example.com", "pw-123456")
    fresh.force_login(admin)
    start = (row.created_at.replace(microsecond=0)).isoformat()
    listed = fresh.get("/ops/api/slow-requests", {"start": start, "minutes": "1"}).json()
    assert row.request_id in [r["request_id"] for r in listed["requests"]]
    page = fresh.get(f"/admin/monitoring/slowrequest/{row.pk}/change/")
    assert page.status_code == 200 and row.request_id in page.content.decode()
    assert fresh.get("/admin/monitoring/slowrequest/", {"q": row.trace_id}).content.decode().count(row.request_id) >= 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"start": "yesterday"}, "start must be an ISO 8601"),
        ({"start": "2026-13-45T99:00:00"}, "start must be an ISO 8601"),
        ({"minutes": "0"}, "minutes must be a whole number from 1 to 1440"),
        ({"minutes": "1441"}, "minutes must be a whole number from 1 to 1440"),
        ({"minutes": "-5"}, "minutes must be a whole number from 1 to 1440"),
    ],
)
def test_the_slow_request_list_refuses_a_bad_window_with_a_message(client, django_user_model, query, message):
    client.force_login(django_user_model.objects.create_superuser("root-window", "w@example.com", "pw-123456"))
    response = client.get("/ops/api/slow-requests", query)
    assert response.status_code == 400 and message in response.json()["message"]
    assert client.get("/ops/api/slow-requests").status_code == 200  # no window: the last hour
