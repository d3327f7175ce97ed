"""The deploy artifacts, validated as far as a machine without a container engine can:
Prometheus config and rules by promtool (and the rules' unit tests), manifests parsed and
checked for probes, non-root users and no baked-in secrets, the Grafana dashboard's queries
against the metric names a real /metrics serves."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT, _need
from tests.deploy.manifests import compose_services, k8s_containers

DEPLOY = ROOT / "deploy"


def promtool() -> str:
    path = shutil.which("promtool")
    _need("promtool (Debian package prometheus)", path is not None)
    assert path is not None
    return path


@pytest.mark.parametrize("args", [
    ["check", "config", "deploy/prometheus/prometheus.yml"],
    ["check", "rules", "deploy/prometheus/alerts.yml"],
    ["test", "rules", "deploy/prometheus/alerts_test.yml"],
])  # fmt: skip
def test_prometheus_config_and_rules_pass_promtool(args: list[str]) -> None:
    result = subprocess.run([promtool(), *args], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def manifests() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        docs.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    return docs


def containers(kind: str = "Deployment") -> dict[str, dict[str, Any]]:
    found = {}
    for doc in manifests():
        if doc["kind"] == kind:
            for container in doc["spec"]["template"]["spec"]["containers"]:
                found[container["name"]] = container
    return found


def test_web_and_socket_pods_probe_live_and_ready() -> None:
    served = containers()
    assert {"web", "ws", "worker", "beat"} <= set(served)
    for name in ("web", "ws"):
        c = served[name]
        assert c["startupProbe"]["httpGet"]["path"] == "/health/live"
        assert c["livenessProbe"]["httpGet"]["path"] == "/health/live"
        assert c["readinessProbe"]["httpGet"]["path"] == "/health/ready"
        assert c["securityContext"]["allowPrivilegeEscalation"] is False


def test_every_pod_runs_as_a_non_root_user_and_beat_is_alone() -> None:
    docs = manifests()
    pods = [d["spec"]["template"]["spec"] for d in docs if d["kind"] in ("Deployment", "Job")]
    assert pods and all(p["securityContext"]["runAsNonRoot"] and p["securityContext"]["runAsUser"] > 0 for p in pods)
    beat = next(d for d in docs if d["metadata"]["name"] == "opsite-beat")
    assert beat["spec"]["replicas"] == 1 and beat["spec"]["strategy"]["type"] == "Recreate"
    assert not [d for d in docs if d["kind"] == "Secret"], "secrets are created by the operator, never committed"


def test_the_commands_in_the_manifests_exist() -> None:
    """Every flag given to uvicorn, gunicorn and celery is one the installed versions accept."""
    helps = {
        "uvicorn": subprocess.run([sys.executable, "-m", "uvicorn", "--help"], capture_output=True, text=True).stdout,
        "gunicorn": subprocess.run([sys.executable, "-m", "gunicorn", "--help"], capture_output=True, text=True).stdout,
    }
    for container in containers().values():
        program = container["command"][0]
        for flag in (a for a in container["command"] if a.startswith("--")):
            if program in helps:
                assert flag in helps[program], f"{program} has no {flag}"


def test_compose_runs_every_part_and_has_no_default_secrets() -> None:
    text = (DEPLOY / "docker-compose.prod.yml").read_text()
    compose = yaml.safe_load(text)
    assert {"postgres", "redis", "migrate", "web", "ws", "worker", "beat", "prometheus", "grafana"} <= set(
        compose["services"]
    )
    for secret in ("SECRET_KEY", "POSTGRES_PASSWORD", "OPS_API_TOKENS", "GRAFANA_ADMIN_PASSWORD"):
        assert f"${{{secret}:?" in text, f"{secret} must be required, not defaulted"
    assert compose["services"]["beat"]["deploy"]["replicas"] == 1


def test_the_image_is_pinned_and_runs_as_a_user() -> None:
    lines = [line.strip() for line in (DEPLOY / "Dockerfile").read_text().splitlines()]
    bases = [line.split()[1] for line in lines if line.startswith("FROM ")]
    assert bases and all(re.search(r":\d+\.\d+\.\d+", base) for base in bases), bases
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("root", "0")


@pytest.mark.django_db
def test_grafana_queries_use_metric_names_opsite_serves(client: Any, settings: Any, make_staff: Any) -> None:
    import json

    from monitoring.health.services import heartbeat_record
    from monitoring.requests.traffic import get_recorder
    from tests.realtime.conftest import event, ingest_sync

    settings.OPS_API_TOKENS = ["grafana-test"]
    staff = make_staff()
    ingest_sync(staff.restaurant, event("G1"))
    client.get("/health/live")
    get_recorder().flush()
    heartbeat_record(name="beat")
    heartbeat_record(name="alerts.evaluator")
    from django.utils import timezone

    from backups.models import Backup

    Backup.objects.create(status=Backup.Status.VERIFIED, engine="postgresql", format="custom",
                          finished_at=timezone.now(), verified_at=timezone.now(), size_bytes=1)  # fmt: skip
    exposition = client.get("/metrics", HTTP_AUTHORIZATION="Bearer grafana-test").content.decode()
    served = set(re.findall(r"^# TYPE (\w+) ", exposition, flags=re.M))
    served |= set(re.findall(r"^(\w+)[{ ]", exposition, flags=re.M))  # samples: _total, _bucket
    dashboard = json.loads((DEPLOY / "grafana" / "opsite-dashboard.json").read_text())
    used = {name for panel in dashboard["panels"] for target in panel["targets"]
            for name in re.findall(r"\b(opsite_\w+)\b", target["expr"])}  # fmt: skip
    assert used and used <= served, used - served
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    in_rules = {
        n for group in rules["groups"] for rule in group["rules"] for n in re.findall(r"\b(opsite_\w+)\b", rule["expr"])
    }
    assert in_rules and in_rules <= served, in_rules - served


def test_the_deploy_files_are_all_checked() -> None:
    """A new file under deploy/ needs a test here (or a reason not to)."""
    known = {
        "Dockerfile",
        "docker-compose.prod.yml",
        "prometheus.yml",
        "alerts.yml",
        "alerts_test.yml",
        "opsite-dashboard.json",
        "config.yaml",
        "migrate-job.yaml",
        "web.yaml",
        "ws.yaml",
        "workers.yaml",
        "opsite.yml",
        "layout.toml",
    }  # fmt: skip (layout.toml: tests/releases/test_layout_and_gate.py)
    present = {p.name for p in DEPLOY.rglob("*") if p.is_file()}
    assert present <= known, present - known


def test_cluster_wide_gauges_are_never_summed_over_targets() -> None:
    """Every target reports opsite's cluster-wide figures: a sum over targets multiplies them.
    Only the per-process counters and histograms may be summed (each target counts its own)."""
    import json

    from common import sockets
    from monitoring.requests import series as request_series
    from realtime import series as feed_series

    per_process = {
        name
        for metric in (sockets.FRAMES, sockets.FRAME_BYTES, sockets.CONNECTS, sockets.CLOSES, request_series.REQUESTS,
                       request_series.ERRORS, request_series.LATENCY.histogram, request_series.QUERIES,
                       request_series.QUERY_SECONDS, feed_series.INGESTED, feed_series.DELIVERY.histogram)
        for family in metric.collect() for name in {family.name, family.name + "_total", family.name + "_bucket"}
    }  # fmt: skip
    dashboard = json.loads((DEPLOY / "grafana" / "opsite-dashboard.json").read_text())
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    exprs += [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    aggregated = re.compile(r"\b(?:sum|count)\s*(?:by\s*\([^)]*\)\s*)?\((?:\s*\w+\s*\()*\s*(opsite_\w+)")
    summed = {name for e in exprs for name in aggregated.findall(e)}
    assert summed, "the per-process series are summed somewhere"
    assert summed <= per_process, summed - per_process
    assert "opsite_celery_task_runs_total" not in per_process  # shared: read with max


def _locked(path: str) -> dict[str, str]:
    """name -> version of a pip-compile lock file; every entry pinned and hashed."""
    lines = [line for line in (ROOT / path).read_text().splitlines() if line.strip() and not line.startswith("#")]
    entries = re.split(r"\n(?=[A-Za-z0-9])", "\n".join(lines))
    pins = {}
    for entry in entries:
        head = entry.split()[0]
        assert "==" in head and "--hash=sha256:" in entry, f"{path}: {head} is not pinned with a hash"
        name, version = head.split("==")
        pins[name.lower()] = version
    return pins


def test_every_dependency_is_locked_with_hashes_and_installed_from_the_lock() -> None:
    runtime, dev = _locked("requirements.txt"), _locked("requirements-dev.txt")
    assert {"django", "gunicorn", "celery", "uvicorn", "channels-redis"} <= set(runtime)
    assert {name: dev[name] for name in runtime} == runtime, "the test lock runs other versions than production"
    assert runtime["gunicorn"].startswith("23."), "gunicorn 24+ writes a control socket under $HOME"
    installs = {
        "bin/run": "--require-hashes -r requirements.txt",
        "bin/test": "--require-hashes -r requirements-dev.txt",
        "deploy/Dockerfile": "--require-hashes -r requirements.txt",
    }
    for path, expected in installs.items():
        assert expected in (ROOT / path).read_text(), f"{path} does not install from the lock"


def test_no_shipped_command_lets_a_server_believe_forwarded_headers_or_compress_frames() -> None:
    """opsite resolves the client address itself (OPSITE_TRUSTED_PROXIES); uvicorn would
    otherwise take X-Forwarded-For from 127.0.0.1 and rewrite the address first. And the feed's
    small frames are not compressed: per-message deflate costs a compressor per socket and CPU
    per frame on both ends, for frames of a few hundred bytes."""
    texts = {
        "Procfile": (ROOT / "Procfile").read_text(),
        "compose": (DEPLOY / "docker-compose.prod.yml").read_text(),
        "k8s": (DEPLOY / "k8s" / "ws.yaml").read_text(),
        "plain": (DEPLOY / "plain" / "layout.toml").read_text(),
    }
    for name, text in texts.items():
        commands = re.findall(r"uvicorn\W+opsite\.asgi[^\n]*(?:\n\s+\"[^\n]*)*", text)
        assert commands and all("--no-proxy-headers" in c for c in commands), (name, commands)
        flat = [re.sub(r'[",\s]+', " ", c) for c in commands]
        assert all("--ws-per-message-deflate false" in c for c in flat), (name, commands)


def test_metrics_are_not_open_to_what_the_ingress_or_published_ports_forward() -> None:
    config = next(d for d in yaml.safe_load_all((DEPLOY / "k8s" / "config.yaml").read_text()) if d)["data"]
    assert config["OPSITE_METRICS_ALLOWED_NETWORKS"] == ""
    compose = yaml.safe_load((DEPLOY / "docker-compose.prod.yml").read_text())
    allowed = compose["x-opsite"]["environment"]["OPSITE_METRICS_ALLOWED_NETWORKS"]
    prometheus = compose["services"]["prometheus"]["networks"]["default"]["ipv4_address"]
    assert allowed == f"{prometheus}/32"


def _millicores(value: str) -> float:
    return float(value[:-1]) if value.endswith("m") else float(value) * 1000


def test_every_layout_gives_the_socket_tier_less_cpu_weight_than_the_order_path() -> None:
    """A reconnect storm (a thousand boards' handshakes at once) must wait for the cores before
    an order does: in every shipped layout the socket tier weighs less than web."""
    compose = compose_services()
    assert compose["ws"].get("cpu_shares", 1024) < compose["web"].get("cpu_shares", 1024)
    k8s = k8s_containers()
    ws_cpu, web_cpu = (_millicores(k8s[name][1]["resources"]["requests"]["cpu"]) for name in ("ws", "web"))
    assert ws_cpu < web_cpu
    layout = tomllib.loads((DEPLOY / "plain" / "layout.toml").read_text())
    processes = {p["name"]: shlex.split(p["command"]) for p in layout["process"]}
    assert not any(argv[0] == "nice" for name, argv in processes.items() if name.startswith("web"))
    ws = processes["ws"]
    program = ws.index(".venv/bin/uvicorn")
    # run as the plain engine runs a command (its argv, no shell), with a probe in uvicorn's place
    probe = [*ws[:program], sys.executable, "-c", "import os; print(os.nice(0))"]
    niceness = subprocess.run(probe, capture_output=True, text=True, check=True, timeout=30).stdout
    assert int(niceness) > os.nice(0)
