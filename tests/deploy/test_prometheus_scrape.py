"""A real Prometheus (Debian's package) with the shipped scrape config and rules, scraping the
compose layout's web (gunicorn, 4 workers) and ws (uvicorn, 2 workers) from the second they
start: every target comes up, no rule is in error, and on this fresh install (no backup ever
verified, beat never ran) the rules that fire on absence fire."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import _need, free_port
from tests.deploy.manifests import DEPLOY, TOKEN, compose_services, interpolate, make_container

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.processes,
    pytest.mark.usefixtures("needs_redis", "needs_postgres"),
]


def prometheus_config(tmp_path: Path, targets: dict[str, str]) -> Path:
    """The shipped config with this machine's targets, a one-second rhythm, and the token as
    its comment says to give it."""
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(DEPLOY / "prometheus" / rule) for rule in config["rule_files"]]
    token = tmp_path / "opsite-token"
    token.write_text(TOKEN)
    job = config["scrape_configs"][0]
    job["authorization"] = {"type": "Bearer", "credentials_file": str(token)}
    for static in job["static_configs"]:
        static["targets"] = [targets[static["labels"]["role"]]]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def api(url: str, path: str, **params: Any) -> Any:
    return httpx.get(f"{url}/api/v1/{path}", params=params, timeout=5).json()["data"]


def _value(url: str, query: str) -> float | None:
    found = api(url, "query", query=query)["result"]
    return float(found[0]["value"][1]) if found else None


def _native_series_across_both_targets(url: str, targets: dict[str, str]) -> None:
    """Traffic with a trace on both targets (web: 4 gunicorn workers, ws: 2 uvicorn workers):
    Prometheus rates the counters, takes percentiles from the buckets of both, sees every
    worker's process series, and stores the exemplars that lead to our requests."""
    trace = "7bf92f3577b34da6a3ce929d0e0e4736"
    started = time.time()
    for n in range(40):
        for target in targets.values():
            response = httpx.get(f"http://{target}/health/live", timeout=5, headers={
                "traceparent": f"00-{trace}-00f067aa0ba902b7-01", "X-Request-ID": f"prom-req-{n:04d}"})  # fmt: skip
            assert response.status_code == 200
    deadline = time.monotonic() + 40
    figures: dict[str, Any] = {}
    while time.monotonic() < deadline:
        figures = {
            "instances": _value(url, 'count(count by (instance) (opsite_http_requests_total{route="GET /health/live"}))'),
            "rate": _value(url, 'sum(rate(opsite_http_requests_total{route="GET /health/live"}[30s]))'),
            "p95": _value(url, "histogram_quantile(0.95, sum by (le) (rate(opsite_http_request_latency_seconds_bucket[30s])))"),
            "pids": _value(url, "count(process_resident_memory_bytes)"),
            "exemplars": [e for series in api(url, "query_exemplars", query="opsite_http_request_latency_seconds_bucket",
                                              start=str(started - 5), end=str(time.time() + 5))
                          for e in series["exemplars"] if e["labels"].get("trace_id") == trace],
        }  # fmt: skip
        if figures["instances"] == 2 and figures["rate"] and figures["p95"] and (figures["pids"] or 0) >= 6 \
                and figures["exemplars"]:  # fmt: skip
            break
        time.sleep(1)
    assert figures["instances"] == 2, figures
    assert figures["rate"] and figures["rate"] > 0, figures
    assert figures["p95"] is not None and 0 < figures["p95"] < 10, figures
    assert (figures["pids"] or 0) >= 6, figures  # 4 gunicorn workers + 2 uvicorn workers
    assert figures["exemplars"] and figures["exemplars"][0]["labels"]["request_id"].startswith("prom-req-"), figures


@pytest.mark.timeout(180)
def test_a_real_prometheus_scrapes_the_layout_from_its_first_second(run, tmp_path):
    binary = shutil.which("prometheus")
    _need("prometheus (Debian package prometheus)", binary is not None)
    assert binary is not None
    services = compose_services()
    containers, targets = {}, {}
    for name, role in (("web", "http"), ("ws", "ws")):
        service = services[name]
        env = {k: interpolate(str(v)) for k, v in service["environment"].items()}
        port = int(service["ports"][0].split(":")[-1])
        containers[name] = make_container(tmp_path, env, mounts=[], ports=[port])
        targets[role] = f"127.0.0.1:{containers[name].ports[port]}"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    prometheus = subprocess.Popen(
        [binary, f"--config.file={prometheus_config(tmp_path, targets)}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}", "--enable-feature=exemplar-storage"],
        stdout=(tmp_path / "prometheus.log").open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        for name, container in containers.items():  # the servers start while Prometheus scrapes
            run(container, [interpolate(part) for part in services[name]["command"]], name)

        deadline = time.monotonic() + 90
        state: dict[str, Any] = {}
        while time.monotonic() < deadline:
            try:
                state["targets"] = {t["labels"]["role"]: t for t in api(url, "targets")["activeTargets"]}
                state["rules"] = [r for g in api(url, "rules")["groups"] for r in g["rules"]]
                state["alerts"] = {a["labels"]["alertname"]: a for a in api(url, "alerts")["alerts"]}
            except (httpx.HTTPError, KeyError, ValueError):
                time.sleep(0.5)
                continue
            up = all(t["health"] == "up" for t in state["targets"].values()) and len(state["targets"]) == 2
            # Rules are evaluated after the scrape that says "up": a scrape that failed while a
            # server was starting leaves OpsiteDown pending until the next evaluation.
            settled = "OpsiteDown" not in state["alerts"]
            if up and settled and state["alerts"].get("OpsiteNoVerifiedBackup", {}).get("state") == "firing":
                break
            time.sleep(0.5)
        assert {role: t["health"] for role, t in state.get("targets", {}).items()} == {"http": "up", "ws": "up"}, (
            state.get("targets"), (tmp_path / "prometheus.log").read_text()[-2000:])  # fmt: skip
        errors = {r["name"]: r.get("lastError") for r in state["rules"] if r.get("health") == "err"}
        assert not errors, errors
        firing = {name for name, alert in state["alerts"].items() if alert["state"] == "firing"}
        assert {"OpsiteNoVerifiedBackup", "OpsiteBeatStopped"} <= firing, state["alerts"]
        assert "OpsiteDown" not in state["alerts"]
        _native_series_across_both_targets(url, targets)
    finally:
        prometheus.terminate()
        prometheus.wait(timeout=20)
