"""The plain-process layout's processes: started detached from a release's directory, each
with a state file in ``run/`` (pid, process start time, release), stopped with SIGTERM (a web
process drains, a worker finishes its task) and SIGKILL after its stop timeout."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from releases.layout import Layout, Process

Progress = Callable[[str], None]


class ProcessFailed(RuntimeError):
    """A process did not start or become ready; the message is one line, the log tail apart."""

    def __init__(self, message: str, log_tail: str = "") -> None:
        super().__init__(message)
        self.log_tail = log_tail


@dataclass(frozen=True)
class Running:
    name: str
    pid: int
    release: str
    started_at: float


def _state_file(layout: Layout, name: str) -> Path:
    return layout.run_dir / f"{name}.json"


def log_file(layout: Layout, name: str) -> Path:
    return layout.run_dir / f"{name}.log"


def running(layout: Layout, name: str) -> Running | None:
    """The live process recorded for ``name`` (None when none is, or its pid now names another)."""
    try:
        state = json.loads(_state_file(layout, name).read_text())
        process = psutil.Process(int(state["pid"]))
        if abs(process.create_time() - float(state["created"])) > 1 or process.status() == psutil.STATUS_ZOMBIE:
            return None
    except (OSError, ValueError, KeyError, TypeError, psutil.Error):
        return None
    return Running(name=name, pid=int(state["pid"]), release=str(state["release"]), started_at=float(state["created"]))


def _expand(argv: list[str], process: Process, release: Path) -> list[str]:
    names = {"{hostname}": socket.gethostname(), "{name}": process.name, "{release}": str(release)}
    out = []
    for arg in argv:
        for key, value in names.items():
            arg = arg.replace(key, value)
        out.append(arg)
    return out


def environment(layout: Layout, process: Process | None, release: Path) -> dict[str, str]:
    env = {**os.environ, **layout.environment(), "OPSITE_RELEASE": release.name}
    if process is not None:
        env.update(process.env)
    return env


def start(layout: Layout, process: Process, release: Path) -> subprocess.Popen[bytes]:
    """Start ``process`` from ``release`` in a session of its own, its output appended to its log."""
    layout.run_dir.mkdir(parents=True, exist_ok=True)
    log = log_file(layout, process.name).open("ab")
    log.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting from {release.name}\n".encode())
    log.flush()
    argv = _expand(process.command, process, release)
    try:
        child = subprocess.Popen(argv, cwd=release, env=environment(layout, process, release), stdin=subprocess.DEVNULL,
                                 stdout=log, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    except OSError as exc:
        raise ProcessFailed(f"{process.name} could not start: {argv[0]}: {exc.strerror}") from exc
    finally:
        log.close()
    created = psutil.Process(child.pid).create_time()
    state = {"pid": child.pid, "created": created, "release": release.name, "command": argv}
    partial = _state_file(layout, process.name).with_suffix(".json.partial")
    partial.write_text(json.dumps(state))
    partial.replace(_state_file(layout, process.name))
    return child


def stop(layout: Layout, process: Process, *, progress: Progress, children: dict[str, subprocess.Popen[bytes]]) -> bool:
    """SIGTERM, then SIGKILL of its session after ``stop_timeout_s``; whether one was running."""
    current = running(layout, process.name)
    if current is None:
        return False
    progress(f"  stopping {process.name} (pid {current.pid}, {current.release})")
    try:
        os.kill(current.pid, signal.SIGTERM)
    except ProcessLookupError:
        return True
    if not _gone(current, process.stop_timeout_s, children.get(process.name)):
        progress(f"  {process.name} still running after {process.stop_timeout_s:g} s: killed")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(current.pid, signal.SIGKILL)
        _gone(current, 10, children.get(process.name))
    _state_file(layout, process.name).unlink(missing_ok=True)
    return True


def _gone(current: Running, timeout_s: float, child: subprocess.Popen[bytes] | None) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if child is not None and child.pid == current.pid:
            if child.poll() is not None:
                return True
        else:
            try:
                if psutil.Process(current.pid).status() == psutil.STATUS_ZOMBIE:
                    return True
            except psutil.NoSuchProcess:
                return True
        time.sleep(0.1)
    return False


def log_tail(layout: Layout, name: str, lines: int = 15) -> str:
    try:
        text = log_file(layout, name).read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def wait_ready(layout: Layout, process: Process, child: subprocess.Popen[bytes], release: Path) -> float:
    """Seconds until ``process`` was ready: its ``ready_url`` answers 200, its ``ready_command``
    exits 0, or (with neither) it is still running 2 s after starting."""
    started = time.monotonic()
    deadline = started + process.start_timeout_s
    last = "no answer yet"
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise ProcessFailed(f"{process.name} exited with {child.returncode} before it was ready",
                                log_tail(layout, process.name))  # fmt: skip
        if process.ready_url:
            try:
                answer = httpx.get(process.ready_url, timeout=2)
                if answer.status_code == 200:
                    return time.monotonic() - started
                last = f"{process.ready_url} answered {answer.status_code}"
            except httpx.HTTPError as exc:
                last = f"{process.ready_url}: {type(exc).__name__}"
        elif process.ready_command:
            argv = _expand(process.ready_command, process, release)
            try:
                done = subprocess.run(argv, cwd=release, env=environment(layout, process, release),
                                      capture_output=True, timeout=max(1.0, deadline - time.monotonic()))  # fmt: skip
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise ProcessFailed(f"{process.name}: the ready command failed: {exc}") from exc
            if done.returncode == 0:
                return time.monotonic() - started
            last = f"the ready command exited {done.returncode}"
        elif time.monotonic() - started >= 2:
            return time.monotonic() - started
        time.sleep(0.25)
    raise ProcessFailed(f"{process.name} was not ready after {process.start_timeout_s:g} s ({last})",
                        log_tail(layout, process.name))  # fmt: skip
