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


def api(url: str, path: str) -> Any:
    return httpx.get(f"{url}/api/v1/{path}", timeout=5).json()["data"]


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
         f"--web.listen-address=127.0.0.1:{port}"],
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
    finally:
        prometheus.terminate()
        prometheus.wait(timeout=20)
