"""Deploys on the plain-process layout, for real on this machine: release directories, two web
processes and a Celery worker started detached from them, a database of their own that the
first deploy migrates from nothing, a till sending orders throughout, and a webhook told of
each outcome. A good release goes through; one whose health gate fails, and one whose process
never becomes ready, are rolled back by themselves; a manual rollback and the restore of the
pre-deploy backup work."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.conftest import ROOT, Sink, free_port, refused_in_one_line, server_env

pytestmark = [pytest.mark.timeout(600), pytest.mark.usefixtures("needs_postgres", "needs_redis")]

_SKIP = shutil.ignore_patterns(".git", ".venv", "node_modules", "var", "test-artifacts", ".mypy_cache",
                               ".ruff_cache", "__pycache__", ".mutation", "staticfiles", ".pytest_cache")  # fmt: skip


def make_release(root: Path, name: str, breakage: tuple[str, str] | None = None) -> Path:
    """A release directory: this code, this virtualenv and chart library, and a breakage
    (file, code) appended to one of its files."""
    release = root / "releases" / name
    shutil.copytree(ROOT, release, ignore=_SKIP)
    (release / ".venv").symlink_to(ROOT / ".venv")
    if (ROOT / "node_modules").exists():
        (release / "node_modules").symlink_to(ROOT / "node_modules")
    if breakage:
        with (release / breakage[0]).open("a") as broken:
            broken.write("\n" + breakage[1] + "\n")
    return release


BROKEN_INGEST = (
    "opsite/urls.py",
    """
from django.views.decorators.csrf import csrf_exempt


@csrf_exempt
def _broken(request):
    raise RuntimeError("this release cannot take orders")


urlpatterns.insert(0, path("api/v1/orders/events", _broken))
""",
)
NEVER_READY = "opsite/asgi.py", "raise SystemExit('this release does not start')"


@pytest.fixture
def scratch_database() -> Iterator[str]:
    base = server_env()["DATABASE_URL"].rsplit("/", 1)[0]
    name = f"opsite_deploy_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield f"{base}/{name}"
    with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def layout(tmp_path: Path, scratch_database: str) -> Iterator[dict[str, Any]]:
    root = tmp_path / "srv"
    (root / "releases").mkdir(parents=True)
    ports = [free_port(), free_port()]
    worker = f"deploytest-{uuid.uuid4().hex[:6]}"
    processes = [
        f"""
[[process]]
name = "web-{n}"
command = ".venv/bin/uvicorn opsite.asgi:application --host 127.0.0.1 --port {port} --no-access-log"
ready_url = "http://127.0.0.1:{port}/health/ready"
stop_timeout_s = 20
"""
        for n, port in enumerate(ports, 1)
    ]
    processes.append(f"""
[[process]]
name = "worker"
command = ".venv/bin/celery -A opsite worker -n {worker}@{{hostname}} -c 1 --without-mingle --without-gossip -l WARNING"
ready_command = ".venv/bin/celery -A opsite inspect ping -d {worker}@{{hostname}} --timeout 3"
start_timeout_s = 60
stop_timeout_s = 30
""")
    metrics = ", ".join(f'"http://127.0.0.1:{port}/metrics"' for port in ports)
    file = root / "layout.toml"
    file.write_text(f"""
kind = "plain"
root = "."
env_file = "env"
{"".join(processes)}
[gate]
metrics_urls = [{metrics}]
settle_s = 6
max_error_rate = 0.05
max_p95_ms = 2000
""")
    (root / "env").write_text(f"DATABASE_URL={scratch_database}\nOPSITE_DATA_DIR={root / 'data'}\n")
    env = {**server_env(), "DATABASE_URL": scratch_database, "OPSITE_DATA_DIR": str(root / "data"),
           "OPSITE_LAYOUT": str(file), "OPSITE_DRAIN_S": "0.3"}  # fmt: skip
    yield {"root": root, "file": file, "ports": ports, "env": env, "database": scratch_database}
    subprocess.run([sys.executable, "manage.py", "processes", "stop"], cwd=ROOT, env=env, capture_output=True,
                   timeout=120)  # fmt: skip


def command(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip
    print(f"$ manage.py {' '.join(args)}  (exit {done.returncode})\n{done.stdout}{done.stderr}")
    return done


class Till:
    """Sends orders to both web processes, as tills behind a balancer do, counting the answers."""

    def __init__(self, ports: list[int], token: str) -> None:
        self.ports, self.token = ports, token
        self.answers: dict[int, int] = {}
        self.said: dict[int, str] = {}
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._send, daemon=True)

    def _send(self) -> None:
        n = 0
        with httpx.Client(timeout=5) as client:
            while not self.stopping.is_set():
                n += 1
                port = self.ports[n % len(self.ports)]
                body = {"type": "order.created", "order_id": f"T{n}", "total_amount": "9.50", "items_count": 1}
                try:
                    answer = client.post(f"http://127.0.0.1:{port}/api/v1/orders/events", json=body,
                                         headers={"Authorization": f"Bearer {self.token}"})  # fmt: skip
                    status = answer.status_code
                    self.said[status] = answer.text[:300]
                except httpx.HTTPError:
                    status = 0  # that process is restarting: a balancer would have taken it out
                self.answers[status] = self.answers.get(status, 0) + 1
                time.sleep(0.02)

    def __enter__(self) -> Till:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.thread.join(10)


def deployments(database: str) -> list[tuple[str, str, str, str]]:
    with psycopg.connect(database) as conn:
        rows = conn.execute("SELECT kind, version, previous_version, result FROM monitoring_deployment "
                            "ORDER BY id").fetchall()  # fmt: skip
    return [tuple(row) for row in rows]  # type: ignore[misc]


def running_release(layout: dict[str, Any]) -> set[str]:
    releases = set()
    for name in ("web-1", "web-2", "worker"):
        state = json.loads((layout["root"] / "run" / f"{name}.json").read_text())
        releases.add(state["release"])
    return releases


def test_a_good_release_goes_through_and_a_bad_one_rolls_itself_back(layout: dict[str, Any], sink: Sink) -> None:
    root, env = layout["root"], layout["env"]
    for name, breakage in (("r1", None), ("r2", None), ("r3-broken", BROKEN_INGEST), ("r4-never-ready", NEVER_READY)):
        make_release(root, name, breakage)

    first = command(env, "deploy", "r1", "--by", "alice")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "nothing to back up: a fresh install" in first.stdout  # migrated from nothing
    assert "deploy r1: succeeded" in first.stdout
    assert running_release(layout) == {"r1"} and (root / "current").resolve().name == "r1"

    created = command(env, "create_restaurant", "till-town", "--name", "Till Town")
    token = created.stdout.split("ingest token: ")[1].split()[0]
    with psycopg.connect(layout["database"], autocommit=True) as conn:
        conn.execute("INSERT INTO monitoring_notificationchannel (name, kind, target, enabled, consecutive_failures) "
                     "VALUES ('ops hook', 'webhook', %s, true, 0)", (sink.url,))  # fmt: skip

    with Till(layout["ports"], token) as till:
        good = command(env, "deploy", "r2", "--by", "bob")
        assert good.returncode == 0, good.stdout
        assert "no verified backup yet: taking one now" in good.stdout
        assert "health gate (6 s): ok" in good.stdout
        assert running_release(layout) == {"r2"}

        bad = command(env, "deploy", "r3-broken", "--by", "bob")
        assert bad.returncode == 1, (till.answers, till.said)
        assert "taking one now" not in bad.stdout  # r2's is young enough
        assert "health gate failed: error rate" in bad.stdout
        assert "deploy r3-broken: rolled_back" in bad.stdout
        assert running_release(layout) == {"r2"} and (root / "current").resolve().name == "r2"
        assert (root / "previous").resolve().name == "r1"  # still the release before r2

        never = command(env, "deploy", "r4-never-ready", "--by", "bob")
        assert never.returncode == 1
        assert "web-1 exited with" in never.stdout and "this release does not start" in never.stdout
        assert running_release(layout) == {"r2"}
    # orders kept being taken by the good releases throughout
    assert till.answers.get(201, 0) > 50, (till.answers, till.said)

    gate_figures = None
    with psycopg.connect(layout["database"]) as conn:
        gate_figures = conn.execute("SELECT gate FROM monitoring_deployment WHERE version = 'r2'").fetchone()[0]
    assert gate_figures["requests"] > 0 and gate_figures["error_rate"] == 0

    told = [m["summary"] for m in sink.received if m.get("kind") == "deploy"]
    assert any("Deploy of r2 succeeded" in t for t in told), told
    assert any("Deploy of r3-broken rolled back: health gate failed" in t for t in told), told

    refused = command(env, "rollback", "--restore-backup")
    assert refused.returncode == 2 and refused_in_one_line(refused, "add --yes to confirm")
    assert running_release(layout) == {"r2"}

    assert deployments(layout["database"]) == [
        ("deploy", "r1", "", "succeeded"),
        ("deploy", "r2", "r1", "succeeded"),
        ("deploy", "r3-broken", "r2", "rolled_back"),
        ("deploy", "r4-never-ready", "r2", "rolled_back"),
    ]

    # back to r1 with the backup taken before r2 was deployed: the orders since are gone
    with psycopg.connect(layout["database"]) as conn:
        orders_before = conn.execute("SELECT count(*) FROM realtime_orderevent").fetchone()[0]
    restored = command(env, "rollback", "--restore-backup", "--yes", "--by", "carol")
    assert restored.returncode == 0, restored.stdout
    assert "restore backup" in restored.stdout and running_release(layout) == {"r1"}
    with psycopg.connect(layout["database"]) as conn:
        restaurants = conn.execute("SELECT count(*) FROM realtime_restaurant").fetchone()[0]
        orders = conn.execute("SELECT count(*) FROM realtime_orderevent").fetchone()[0]
    assert restaurants == 1 and 0 < orders < orders_before - 100  # those of r2, r3 and r4's time are gone
    assert deployments(layout["database"]) == [
        ("deploy", "r1", "", "succeeded"),
        ("deploy", "r2", "r1", "failed"),  # running when the backup was taken: marked as interrupted
        ("rollback", "r1", "r2", "succeeded"),
    ]

    again = command(env, "rollback", "--by", "carol")  # the previous release is now r2
    assert again.returncode == 0, again.stdout
    assert running_release(layout) == {"r2"} and (root / "current").resolve().name == "r2"
    assert deployments(layout["database"])[-1] == ("rollback", "r2", "r1", "succeeded")
