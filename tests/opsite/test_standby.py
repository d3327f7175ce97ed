"""Replica routing against a real streaming standby: a private primary cluster and a
``pg_basebackup`` of it, streaming, on ports of their own; a process configured with both as a
deployment would be (``DATABASE_URL``, ``DATABASE_REPLICA_URL``) reads from the standby, keeps
read-your-writes, and falls back to the primary while the standby is stopped or paused."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from tests.conftest import ROOT, _need, free_port, server_env

pytestmark = [pytest.mark.processes, pytest.mark.timeout(180)]


def _pg_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


def _as_postgres() -> list[str]:
    """initdb and the server refuse to run as root; run them as the postgres account then."""
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


@dataclass
class Cluster:
    data: Path
    port: int
    bin: Path

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/opsite"

    def ctl(self, *args: str) -> None:
        subprocess.run([*_as_postgres(), str(self.bin / "pg_ctl"), "-D", str(self.data), *args],
                       check=True, capture_output=True, timeout=60)  # fmt: skip

    def start(self) -> None:
        self.ctl("-l", str(self.data / "server.log"), "-w", "start")

    def stop(self) -> None:
        self.ctl("-m", "fast", "-w", "stop")

    def sql(self, statement: str, dbname: str = "opsite") -> object:
        with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", dbname=dbname,
                             autocommit=True, connect_timeout=5) as conn:  # fmt: skip
            cursor = conn.execute(statement)
            row = cursor.fetchone() if cursor.description else None
            return row[0] if row else None


def _configure(data: Path, port: int) -> None:
    with (data / "postgresql.conf").open("a") as conf:
        conf.write(f"\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{data}'\n"
                   "fsync = off\nhot_standby = on\nwal_receiver_status_interval = 1s\n")  # fmt: skip


@pytest.fixture(scope="module")
def standby_pair() -> Iterator[tuple[Cluster, Cluster]]:
    pg_bin = _pg_bin()
    _need("PostgreSQL server binaries (initdb, pg_basebackup)", pg_bin is not None)
    assert pg_bin is not None
    _need("runuser and a postgres account", os.geteuid() != 0 or shutil.which("runuser") is not None)
    base = Path(tempfile.mkdtemp(prefix="opsite-standby-", dir="/var/tmp"))
    base.chmod(0o755)
    primary = Cluster(base / "primary", free_port(), pg_bin)
    standby = Cluster(base / "standby", free_port(), pg_bin)
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
    run = [*_as_postgres()]
    try:
        subprocess.run([*run, str(pg_bin / "initdb"), "-D", str(primary.data), "-U", "postgres", "-A", "trust",
                        "--no-sync"], check=True, capture_output=True, timeout=60)  # fmt: skip
        _configure(primary.data, primary.port)
        primary.start()
        primary.sql("CREATE DATABASE opsite", dbname="postgres")
        env = {**server_env(), "DATABASE_URL": primary.url}
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True,
                       capture_output=True, timeout=120)  # fmt: skip
        subprocess.run([*run, str(pg_bin / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(primary.port),
                        "-U", "postgres", "-D", str(standby.data), "-R", "-X", "stream", "-c", "fast"],
                       check=True, capture_output=True, timeout=120)  # fmt: skip
        _configure(standby.data, standby.port)
        standby.start()
        assert standby.sql("SELECT pg_is_in_recovery()") is True
        yield primary, standby
    finally:
        for cluster in (standby, primary):
            if (cluster.data / "postmaster.pid").exists():
                subprocess.run([*run, str(pg_bin / "pg_ctl"), "-D", str(cluster.data), "-m", "immediate", "stop"],
                               capture_output=True, timeout=60)  # fmt: skip
        shutil.rmtree(base, ignore_errors=True)


class Probe:
    """A fresh process configured with the pair, driven one command at a time."""

    def __init__(self, primary: Cluster, standby: Cluster, **extra_env: str) -> None:
        env = {**server_env(), "DATABASE_URL": primary.url, "DATABASE_REPLICA_URL": standby.url,
               "DATABASE_REPLICA_CONNECT_TIMEOUT": "1", "OPSITE_REPLICA_CHECK_S": "0", **extra_env}  # fmt: skip
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.opsite.standby_probe"], cwd=ROOT, env=env, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip

    def ask(self, *command: str) -> dict:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(" ".join(command) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()  # bounded by the test's timeout
        assert line, f"the probe exited: {self.process.stderr.read() if self.process.stderr else ''}"
        answer = json.loads(line)
        assert "error" not in answer, answer
        return answer

    def close(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()
        self.process.wait(timeout=10)


@pytest.fixture
def probe(standby_pair: tuple[Cluster, Cluster]) -> Iterator[Probe]:
    started = Probe(*standby_pair, OPSITE_REPLICA_MAX_LAG_S="1")
    yield started
    started.close()


def _until(probe: Probe, command: str, predicate, seconds: float = 20) -> dict:
    deadline = time.monotonic() + seconds
    while True:
        answer = probe.ask(command)
        if predicate(answer) or time.monotonic() > deadline:
            return answer
        time.sleep(0.2)


def test_dashboard_reads_go_to_the_standby_and_see_what_the_primary_wrote(standby_pair, probe):
    _, standby = standby_pair
    assert probe.ask("route") == {"alias": "replica0", "in_recovery": True, "port": standby.port}
    assert probe.ask("streamed", "written-on-primary") == {"seen": True, "alias": "replica0"}


def test_a_request_that_wrote_reads_its_write_even_while_the_standby_lags(standby_pair, probe):
    _, standby = standby_pair
    standby.sql("SELECT pg_wal_replay_pause()")
    try:
        answer = probe.ask("request")
        assert answer == {"status": 200, "before": "replica0", "after": "default", "seen": True}
        # the standby really had not replayed it: read-your-writes is what made it visible
        assert standby.sql("SELECT count(*) FROM monitoring_heartbeat WHERE name = 'replica-test'") == 0
    finally:
        standby.sql("SELECT pg_wal_replay_resume()")


def test_a_stopped_standby_falls_back_to_the_primary_and_comes_back_without_a_restart(standby_pair, probe):
    _, standby = standby_pair
    assert probe.ask("route")["alias"] == "replica0"
    standby.stop()
    try:
        assert probe.ask("route") == {"alias": "default", "in_recovery": False, "port": standby_pair[0].port}
        state = probe.ask("state")
        assert not state["ok"] and "unreachable" in state["detail"]
        replicas = probe.ask("health")
        assert replicas["status"] == "degraded" and "unreachable" in replicas["detail"]
    finally:
        standby.start()
    assert _until(probe, "route", lambda a: a["alias"] == "replica0")["alias"] == "replica0"


def test_a_paused_standby_that_falls_behind_is_left_until_it_catches_up(standby_pair, probe):
    primary, standby = standby_pair
    standby.sql("SELECT pg_wal_replay_pause()")
    try:
        primary.sql("INSERT INTO monitoring_heartbeat (name, at, node) VALUES ('behind', now(), '')")
        state = _until(probe, "state", lambda a: not a["ok"])
        assert not state["ok"] and "lagging" in state["detail"] and state["lag_s"] > 1, state
        assert probe.ask("route")["alias"] == "default"
        assert probe.ask("seen", "behind") == {"seen": True, "alias": "default"}
    finally:
        standby.sql("SELECT pg_wal_replay_resume()")
    assert _until(probe, "state", lambda a: a["ok"])["ok"]
    assert probe.ask("seen", "behind") == {"seen": True, "alias": "replica0"}
