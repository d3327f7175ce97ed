"""The layout file, the health gate's arithmetic, the engines' commands against the shipped
manifests, and the commands' refusals: each bad input a one-line error before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from releases import engines
from releases.gate import Reading, judge, quantile
from releases.layout import Gate, LayoutError, load
from tests.conftest import ROOT, manage_py, refused_in_one_line, server_env

pytestmark = pytest.mark.timeout(60)

PLAIN = """
kind = "plain"
root = "srv"
[[process]]
name = "web-1"
command = "gunicorn opsite.wsgi:application -b 127.0.0.1:8101"
ready_url = "http://127.0.0.1:8101/health/ready"
[gate]
metrics_urls = ["http://127.0.0.1:8101/metrics"]
settle_s = 30
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "layout.toml"
    path.write_text(text)
    return path


def test_a_plain_layout_reads_with_its_defaults(tmp_path: Path) -> None:
    layout = load(write(tmp_path, PLAIN))
    assert layout.kind == "plain" and layout.root == tmp_path / "srv" and layout.current == tmp_path / "srv/current"
    assert layout.processes[0].command == ["gunicorn", "opsite.wsgi:application", "-b", "127.0.0.1:8101"]
    assert layout.gate.max_error_rate == 0.05 and layout.gate.max_p95_ms == 1000 and layout.gate.settle_s == 30
    assert layout.backup_max_age_h == 24 and layout.warm_cache


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("kind = 'swarm'", "kind must be one of plain, compose, kubernetes"),
        ("kind = 'plain'", "a plain layout needs at least one [[process]]"),
        (PLAIN.replace('name = "web-1"', 'name = "Web 1"'), "may hold only a-z"),
        (PLAIN + '[[process]]\nname = "web-1"\ncommand = "x"\n', "two processes have the same name"),
        (PLAIN.replace('ready_url = "http://', 'ready_url = "ftp://'), "ready_url must be an http://"),
        (PLAIN.replace("settle_s = 30", "settle_s = 30\nmax_error_rate = 5"), "max_error_rate is a share"),
        (PLAIN.replace("settle_s = 30", "settle_s = 'long'"), "settle_s must be int or float"),
        (PLAIN + "colour = 'blue'\n", "gate: unknown keys colour"),
        ("colour = 'blue'\n" + PLAIN, "layout: unknown keys colour"),
        ("kind = 'compose'", "needs services"),
        ("kind = [", "is not valid TOML"),
        (PLAIN.replace('command = "gunicorn', "command = \"'gunicorn"), "No closing quotation"),
    ],
)
def test_a_wrong_layout_is_one_line_that_says_what(tmp_path: Path, text: str, says: str) -> None:
    with pytest.raises(LayoutError) as error:
        load(write(tmp_path, text))
    assert says in str(error.value) and "\n" not in str(error.value)


def exposition(requests: dict[tuple[str, str], int], latencies: dict[str, list[float]]) -> str:
    """A /metrics page with opsite's request series, as a process writes it."""
    registry = CollectorRegistry()
    counter = Counter("opsite_http_requests", "", ["route", "status_class"], registry=registry)
    histogram = Histogram("opsite_http_request_latency_seconds", "", ["route"], registry=registry,
                          buckets=(0.01, 0.05, 0.1, 0.5, 1.0, 2.5))  # fmt: skip
    for (route, status_class), n in requests.items():
        counter.labels(route, status_class).inc(n)
    for route, values in latencies.items():
        for value in values:
            histogram.labels(route).observe(value)
    return generate_latest(registry).decode()


def reading(*pages: str) -> Reading:
    result = Reading()
    for page in pages:
        result.add_text(page)
    return result


def test_the_gate_judges_the_difference_over_its_window_without_probes() -> None:
    gate = Gate(metrics_urls=[], max_error_rate=0.05, max_p95_ms=400)
    before = reading(exposition({("POST /api/v1/orders/events", "2xx"): 1000}, {"POST /x": [0.02] * 1000}))
    # in the window: 90 good, 10 failed, and probes that failed (draining) are not counted
    after = reading(
        exposition({("POST /api/v1/orders/events", "2xx"): 1090, ("POST /api/v1/orders/events", "5xx"): 10,
                    ("GET /health/ready", "5xx"): 500, ("GET /metrics", "2xx"): 50},
                   {"POST /x": [0.02] * 1000 + [0.02] * 95 + [0.3] * 5, "GET /health/ready": [2.0] * 500}),
    )  # fmt: skip
    verdict = judge(before, after, gate)
    assert (verdict.requests, verdict.errors) == (100, 10)
    assert not verdict.passed and verdict.reason == "error rate 10.0% is over 5.0%"
    assert verdict.p95_ms is not None and verdict.p95_ms <= 50  # 95 of 100 new requests took 20 ms

    slow = reading(exposition({("POST /x", "2xx"): 1100}, {"POST /x": [0.02] * 1000 + [0.45] * 100}))
    verdict = judge(before, slow, gate)
    assert not verdict.passed and verdict.reason.startswith("p95 ") and verdict.p95_ms is not None
    assert 400 < verdict.p95_ms <= 500

    quiet = judge(before, before, Gate(metrics_urls=[], min_requests=1))
    assert not quiet.passed and "only 0 requests" in quiet.reason
    assert judge(before, before, Gate(metrics_urls=[])).passed


def test_a_restarted_process_counts_from_zero_and_quantiles_interpolate() -> None:
    before = reading(exposition({("GET /a", "2xx"): 500}, {}))
    after = reading(exposition({("GET /a", "2xx"): 40}, {}))  # its counters started again
    assert judge(before, after, Gate(metrics_urls=[])).requests == 40
    buckets = {0.1: 50.0, 0.2: 100.0, float("inf"): 100.0}
    assert quantile(buckets, 0.5) == pytest.approx(0.1)
    assert quantile(buckets, 0.75) == pytest.approx(0.15)
    assert quantile({0.1: 0.0, float("inf"): 0.0}, 0.95) is None


def test_the_engines_commands_name_what_the_shipped_manifests_define(tmp_path: Path) -> None:
    compose = tmp_path / "compose.toml"
    compose.write_text(f'kind = "compose"\ncompose_file = "{ROOT}/deploy/docker-compose.prod.yml"\n'
                       'services = ["web", "ws", "worker", "beat"]\n[gate]\nmetrics_urls = []\n')  # fmt: skip
    plan = engines.plan(load(compose), "1.4.2")
    compose_text = (ROOT / "deploy/docker-compose.prod.yml").read_text()
    for service in ("web", "ws", "worker", "beat", "migrate"):
        assert f"\n  {service}:" in compose_text
    assert ["docker", "compose", "-f", f"{ROOT}/deploy/docker-compose.prod.yml", "up", "-d", "--no-deps", "--wait",
            "ws"] in plan  # fmt: skip
    assert "image: ${OPSITE_IMAGE:-opsite:latest}" in compose_text  # the tag reaches every opsite service

    k8s = tmp_path / "k8s.toml"
    k8s.write_text(f'kind = "kubernetes"\nnamespace = "shop"\nimage = "registry.example.com/opsite"\n'
                   f'migrate_job = "{ROOT}/deploy/k8s/migrate-job.yaml"\n'
                   'services = ["opsite-web", "opsite-ws", "opsite-worker", "opsite-beat"]\n')  # fmt: skip
    layout = load(k8s)
    manifests = "".join((ROOT / "deploy/k8s" / f).read_text() for f in ("web.yaml", "ws.yaml", "workers.yaml"))
    for name in layout.services:
        assert f"name: {name}," in manifests, name
    job, manifest = engines.Kubernetes(layout).job_manifest("registry.example.com/opsite:1.4.2")
    assert job == "opsite-migrate" and "image: registry.example.com/opsite:1.4.2" in manifest
    assert "registry.example.com/opsite:1.0.0" not in manifest
    plan = engines.plan(layout, "1.4.2")
    assert [
        "kubectl",
        "-n",
        "shop",
        "set",
        "image",
        "deployment/opsite-ws",
        "*=registry.example.com/opsite:1.4.2",
    ] in plan
    with pytest.raises(engines.DeployError, match="is not an image tag"):
        engines.plan(layout, "1.4.2; rm -rf /")


def test_the_commands_refuse_bad_input_in_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in server_env().items() if k != "OPSITE_LAYOUT"}
    done = manage_py("deploy", "r9", env=env)
    assert done.returncode == 2 and refused_in_one_line(done, "no layout: pass --layout FILE or set OPSITE_LAYOUT")
    layout = write(tmp_path, PLAIN)
    done = manage_py("deploy", "r9", "--layout", str(layout), env=env)
    assert done.returncode == 2 and refused_in_one_line(done, "no release 'r9'")
    done = manage_py("rollback", "--layout", str(layout), env=env)
    assert done.returncode == 2 and refused_in_one_line(done, "no previous release to roll back to")
    done = manage_py("rollback", "--layout", str(layout), "--backup", "3", env=env)
    assert done.returncode == 2 and refused_in_one_line(done, "--backup goes with --restore-backup")
    done = manage_py("processes", "start", "--layout", str(layout), env=env)
    assert done.returncode == 1 and refused_in_one_line(done, "no current release: deploy one first")
    status = manage_py("processes", "status", "--layout", str(layout), env=env)
    assert status.returncode == 0 and status.stdout.splitlines() == ["current: -", "previous: -", "web-1: stopped"]


def test_the_shipped_example_layout_reads() -> None:
    layout = load(ROOT / "deploy/plain/layout.toml")
    assert [p.name for p in layout.processes] == ["web-1", "web-2", "ws", "worker", "beat"]
    assert len(layout.gate.metrics_urls) == 3 and layout.gate.max_error_rate == 0.05
