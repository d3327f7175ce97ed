from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.deploy.manifests import Container


@pytest.fixture
def run(tmp_path: Path) -> Iterator[Any]:
    started: list[subprocess.Popen[bytes]] = []

    def start(container: Container, command: list[str], name: str) -> subprocess.Popen[bytes]:
        argv = [container.map_ports(arg) for arg in command]
        log = tmp_path / f"{name}.log"
        process = subprocess.Popen(argv, cwd=ROOT, env=container.env, start_new_session=True,
                                   stdout=log.open("wb"), stderr=subprocess.STDOUT)  # fmt: skip
        started.append(process)
        return process

    yield start
    for process in started:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
    for process in started:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
