"""Helpers that run the deploy files as their engines run them (see test_manifests_run)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import ROOT, free_port, server_env

DEPLOY = ROOT / "deploy"
TOKEN = "manifest-test-token"
SECRETS = {"SECRET_KEY": "manifest-test-secret-key-" + "x" * 40, "POSTGRES_PASSWORD": "pw", "OPS_API_TOKENS": TOKEN,
           "ALLOWED_HOSTS": "ops.example.com", "GRAFANA_ADMIN_PASSWORD": "pw"}  # fmt: skip
POD_IP = "10.42.0.7"  # the address a kubelet's probe names in its Host header
START_S = 60.0


# -- what the image declares ---------------------------------------------------------------


def _dockerfile_lines() -> list[str]:
    """Logical lines of the final stage, continuations joined."""
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    last_from = max(i for i, line in enumerate(lines) if line.startswith("FROM "))
    return lines[last_from:]


def image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for line in _dockerfile_lines():
        if line.startswith("ENV "):
            env.update(dict(pair.split("=", 1) for pair in shlex.split(line[4:])))
    return env


def image_dirs() -> list[str]:
    dirs: list[str] = []
    for line in _dockerfile_lines():
        if line.startswith("RUN "):
            for match in re.finditer(r"mkdir -p ((?:/\S+\s*)+)", line):
                dirs += [d for d in match.group(1).split() if d.startswith("/")]
        if line.startswith("WORKDIR "):
            dirs.append(line.split()[1])
    return dirs


def image_healthcheck() -> list[str]:
    """The Dockerfile's HEALTHCHECK in compose's terms (its CMD is a shell form)."""
    line = next(line for line in _dockerfile_lines() if line.startswith("HEALTHCHECK "))
    return ["CMD-SHELL", line.split(" CMD ", 1)[1]]


# -- a stand-in for a container --------------------------------------------------------------


@dataclass
class Container:
    root: Path  # the container's file system
    ports: dict[int, int]  # container port -> local port
    env: dict[str, str]

    def path(self, path: str) -> Path:
        return self.root / path.lstrip("/")

    def map_ports(self, text: str) -> str:
        for inside, outside in self.ports.items():
            text = re.sub(rf"(?<![\d.]){inside}(?!\d)", str(outside), text)
        return text

    def map_paths(self, value: str) -> str:
        return str(self.path(value)) if value.startswith(("/run/", "/var/", "/tmp", "/app")) else value


def make_container(tmp_path: Path, env: dict[str, str], mounts: list[str], ports: list[int]) -> Container:
    root = tmp_path / f"fs-{len(list(tmp_path.glob('fs-*')))}"
    container = Container(root=root, ports={p: free_port() for p in ports}, env={})
    for directory in image_dirs():
        container.path(directory).mkdir(parents=True, exist_ok=True)
    for mount in mounts:  # an empty volume hides what the image had there
        shutil.rmtree(container.path(mount), ignore_errors=True)
        container.path(mount).mkdir(parents=True)
    local = server_env()
    merged = {**image_env(), **env}
    # host names that only resolve inside the deployment stand for this machine's servers
    merged["DATABASE_URL"], merged["REDIS_URL"] = local["DATABASE_URL"], local["REDIS_URL"]
    merged["CELERY_BROKER_URL"] = local["REDIS_URL"]
    merged["REDIS_PREFIX"] = local["REDIS_PREFIX"]
    container.env = {
        **{k: v for k, v in os.environ.items() if k in ("LANG", "LC_ALL")},
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "HOSTNAME": socket.gethostname(),  # the engine sets it to the container's host name
        "HOME": str(container.path("/app")),
        **{k: container.map_paths(v) for k, v in merged.items()},
    }
    return container


def until(check: Any, what: str, process: subprocess.Popen[bytes], timeout: float = START_S) -> None:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        assert process.poll() is None, f"{what}: the process exited with {process.returncode}"
        last = check()
        if last is True:
            return
        time.sleep(0.5)
    pytest.fail(f"{what} never passed; last: {last}")


def compose_check(container: Container, test: list[str]) -> Any:
    """A compose healthcheck as the engine runs it: exit status 0 is healthy."""
    kind, *rest = test
    argv = ["/bin/sh", "-c", rest[0]] if kind == "CMD-SHELL" else rest
    argv = [container.map_ports(arg) for arg in argv]
    result = subprocess.run(argv, env=container.env, capture_output=True, text=True, timeout=30, cwd=ROOT)
    return True if result.returncode == 0 else (result.returncode, result.stdout[-300:], result.stderr[-300:])


def metrics_served(container: Container, port: int) -> None:
    response = httpx.get(f"http://127.0.0.1:{container.ports[port]}/metrics",
                         headers={"Authorization": f"Bearer {TOKEN}", "Host": f"{POD_IP}:{port}"}, timeout=20)  # fmt: skip
    assert response.status_code == 200, response.text[:500]
    assert "opsite_orders_today" in response.text


# -- compose ---------------------------------------------------------------------------------


def interpolate(value: str) -> str:
    """Compose's interpolation: ${VAR}, ${VAR:-default}, ${VAR:?error}; $$ is a literal $."""

    def one(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2) or "", match.group(3) or ""
        if name in SECRETS:
            return SECRETS[name]
        if op == ":?":
            raise AssertionError(f"{name} is required: {arg}")
        return arg if op == ":-" else ""

    value = re.sub(r"\$\{(\w+)(:[-?])?([^}]*)\}", one, value.replace("$$", "\0"))
    return value.replace("\0", "$")


def compose_services() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "docker-compose.prod.yml").read_text())["services"]


def compose_healthcheck(service: dict[str, Any]) -> list[str] | None:
    check = service.get("healthcheck")
    if check is None:
        return image_healthcheck() if service.get("image", "").startswith("opsite") else None
    if check.get("disable"):
        return None
    return [interpolate(part) for part in check["test"]]


# -- Kubernetes ------------------------------------------------------------------------------


def k8s_documents() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        docs += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return docs


def k8s_containers() -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """Each Deployment's container with its pod spec, by component name."""
    found = {}
    for doc in k8s_documents():
        if doc["kind"] == "Deployment":
            pod = doc["spec"]["template"]["spec"]
            found[doc["metadata"]["labels"]["app.kubernetes.io/component"]] = (pod, pod["containers"][0])
    return found


def kubelet_probe(container: Container, spec: dict[str, Any], named_ports: dict[str, int]) -> Any:
    timeout = float(spec.get("timeoutSeconds", 1))
    if "httpGet" in spec:
        get = spec["httpGet"]
        port = get["port"] if isinstance(get["port"], int) else named_ports[get["port"]]
        try:
            response = httpx.get(f"http://127.0.0.1:{container.ports[port]}{get['path']}",
                                 headers={"Host": f"{POD_IP}:{port}", "User-Agent": "kube-probe/1.31"},
                                 timeout=max(timeout, 5.0))  # fmt: skip
        except httpx.HTTPError as exc:
            return repr(exc)
        return True if 200 <= response.status_code < 400 else (response.status_code, response.text[:200])
    argv = spec["exec"]["command"]  # no shell: the kubelet executes the argv
    result = subprocess.run(argv, env=container.env, capture_output=True, text=True, timeout=max(timeout, 30), cwd=ROOT)
    return True if result.returncode == 0 else (result.returncode, result.stdout[-300:], result.stderr[-300:])
