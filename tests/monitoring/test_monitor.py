"""``manage.py monitor``: the health report on a period, as lines or JSON lines, a log, exit codes
0/1/2 for healthy/degraded/unhealthy, and a notification on a change of status, run as a
fresh process the way cron or a terminal runs it."""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import sys
import time
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from monitoring.alerts.models import NotificationChannel
from monitoring.health import probes

from ..conftest import ROOT, free_port, manage_py, server_env

pytestmark = pytest.mark.django_db(transaction=True)
EXIT = {"healthy": 0, "degraded": 1, "unhealthy": 2}


def monitor(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return manage_py("monitor", *args, env=env)


def test_once_as_json_exits_with_the_status_it_printed():
    done = monitor("--once", "--json")
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, done.stdout + done.stderr
    round_ = json.loads(lines[0])
    assert round_["status"] in EXIT
    assert done.returncode == EXIT[round_["status"]] == round_["exit_code"]
    assert round_["checks"]["database"]["status"] == "ok"
    assert {"cache", "celery", "beat", "backups"} <= set(round_["checks"])


def test_a_database_that_is_down_makes_it_unhealthy_exit_2():
    env = {**server_env(), "DATABASE_URL": f"postgres://postgres@127.0.0.1:{free_port()}/nothing"}
    done = monitor("--once", "--json", env=env)
    round_ = json.loads(done.stdout.strip().splitlines()[-1])
    assert (round_["status"], done.returncode) == ("unhealthy", 2), done.stderr
    assert round_["checks"]["database"]["status"] == "failed"


def test_every_check_ok_exits_0(monkeypatch):
    monkeypatch.setattr(probes, "REGISTRY", {"database": probes.REGISTRY["database"]})
    monkeypatch.setattr(probes, "_cache", probes._Cached())
    out = StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("monitor", "--once", stdout=out)
    assert exited.value.code == 0
    assert "HEALTHY (1/1 ok)" in out.getvalue()
    assert out.getvalue().splitlines()[0].startswith("database")


@pytest.mark.parametrize(
    ("args", "says"),
    [(["--every", "0"], "--every must be over 0"), (["--every", "soon"], "invalid float value"),
     (["--count", "-1"], "--count must be 0 or more"), (["--log", "/no/such/dir/monitor.log"], "no directory")],
)  # fmt: skip
def test_bad_usage_is_one_line_and_exit_3(args, says):
    done = monitor(*args)
    assert done.returncode == 3
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], done.stderr


def test_colour_on_a_terminal_and_none_when_piped():
    piped = monitor("--once")
    assert "\x1b[" not in piped.stdout and "database" in piped.stdout
    leader, follower = pty.openpty()
    process = subprocess.Popen([sys.executable, "manage.py", "monitor", "--once"], cwd=ROOT, env=server_env(),
                               stdout=follower, stderr=subprocess.DEVNULL)  # fmt: skip
    os.close(follower)
    output = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal closed: the process is done
            break
        if not chunk:
            break
        output += chunk
    os.close(leader)
    assert process.wait(timeout=10) in (0, 1, 2)
    assert b"\x1b[" in output and b"database" in output


def test_it_polls_on_its_period_appends_to_the_log_and_stops_on_sigterm(tmp_path):
    log = tmp_path / "monitor.log"
    process = subprocess.Popen(
        [sys.executable, "manage.py", "monitor", "--every", "0.5", "--log", str(log)],
        cwd=ROOT, env=server_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not log.exists() or len(log.read_text().splitlines()) < 3):
        time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    code = process.wait(timeout=10)
    rounds = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(rounds) >= 3
    assert code == EXIT[rounds[-1]["status"]]
    stamps = [time.mktime(time.strptime(r["at"][:19], "%Y-%m-%dT%H:%M:%S")) for r in rounds[:3]]
    assert stamps[2] - stamps[0] >= 0.5  # a period apart, not a burst


def test_count_stops_after_that_many_rounds(tmp_path):
    log = tmp_path / "monitor.log"
    done = monitor("--every", "0.2", "--count", "2", "--json", "--log", str(log))
    assert len(done.stdout.strip().splitlines()) == 2
    assert len(log.read_text().splitlines()) == 2


def test_a_change_of_status_is_told_to_the_alert_channels_across_cron_runs(sink, tmp_path: Path):
    NotificationChannel.objects.create(name="ops hook", kind=NotificationChannel.Kind.WEBHOOK, target=sink.url)
    NotificationChannel.objects.create(name="off", kind=NotificationChannel.Kind.WEBHOOK, target=sink.url,
                                       enabled=False)  # fmt: skip
    log = tmp_path / "monitor.log"
    log.write_text('{"status":"healthy"}\nnot json at all\n')  # the last readable line is what counts
    first = monitor("--once", "--notify", "--log", str(log))
    now = json.loads(log.read_text().splitlines()[-1])["status"]
    assert now != "healthy", "this machine runs no worker or beat here, so it cannot be healthy"
    assert len(sink.received) == 1, first.stderr
    told = sink.received[0]
    assert told["labels"]["from"] == "healthy" and told["labels"]["to"] == now
    assert told["status"] == "firing" and told["severity"] in ("warning", "critical")
    assert told["failing"], "names the checks that are not ok"
    assert "ops hook sent" in first.stderr
    again = monitor("--once", "--notify", "--log", str(log))  # same status: nothing to tell
    assert again.returncode == EXIT[now]
    assert len(sink.received) == 1
