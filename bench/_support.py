"""Shared plumbing for the bench scripts: a scratch Postgres database, Redis, server processes."""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import psycopg

ROOT = Path(__file__).resolve().parent.parent
PG = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
BENCH_DB = "opsite_bench"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/1")


def bench_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_", "DJANGO_", "CELERY_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="opsite.settings.development",
        DJANGO_DEBUG="false",
        DATABASE_URL=f"{PG}/{BENCH_DB}",
        REDIS_URL=REDIS_URL,
        REDIS_PREFIX="opsite-bench",
        LOG_LEVEL="WARNING",
        OPSITE_FEED_MAX_SOCKETS_PER_USER="100000",
        OPSITE_INGEST_RATE_PER_MINUTE="10000000",
    )
    env.update(extra)
    return env


def fresh_database() -> None:
    """Drop and re-create the bench database, migrate it, and set Django up against it."""
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {BENCH_DB}")
    env = bench_env()
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    subprocess.run(["redis-cli", "-u", REDIS_URL, "flushdb"], check=True, capture_output=True)
    setup_django()


def setup_django() -> None:
    """Point this process at the bench database (as it is) and set Django up."""
    os.environ.update(bench_env())
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def server(
    command: Sequence[str], *, port: int, env: dict[str, str], ready_path: str = "/health/live"
) -> Iterator[str]:
    url = f"http://127.0.0.1:{port}"
    log = open(f"/tmp/opsite-bench-{port}.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(list(command), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{command[0]} exited; see /tmp/opsite-bench-{port}.log")
            try:
                httpx.get(url + ready_path, timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{command[0]} never answered") from None
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def _socket_tier_prefix() -> list[str]:
    """What the plain layout runs its socket tier under (a lower CPU priority than the order
    path), so that the benches' socket processes run as production's do."""
    layout = tomllib.loads((ROOT / "deploy" / "plain" / "layout.toml").read_text())
    argv = shlex.split(next(p["command"] for p in layout["process"] if p["name"] == "ws"))
    return argv[: argv.index(".venv/bin/uvicorn")]


def uvicorn(port: int, app: str = "opsite.asgi:application", *, workers: int = 1, socket_tier: bool = True
            ) -> list[str]:  # fmt: skip
    """The socket tier as the layouts run it; ``socket_tier=False`` for one process serving
    everything (the Procfile's embedded layout), at the normal priority."""
    prefix = _socket_tier_prefix() if socket_tier else []
    return [*prefix, sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port), "--no-access-log",
            "--log-level", "warning", "--ws-max-size", "1048576", "--ws-per-message-deflate", "false",
            "--no-proxy-headers", *(["--workers", str(workers)] if workers > 1 else [])]  # fmt: skip


def gunicorn(port: int, *, workers: int = 1) -> list[str]:
    return [sys.executable, "-m", "gunicorn", "opsite.wsgi:application", "-b", f"127.0.0.1:{port}",
            "-w", str(workers), "--log-level", "warning"]  # fmt: skip


def percentile(values: Sequence[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def session_cookie(username: str) -> str:
    from django.contrib.auth import get_user_model
    from django.test import Client

    user, _ = get_user_model().objects.get_or_create(
        username=username, defaults={"is_superuser": True, "is_staff": True}
    )
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


def http_origin(ws_url: str) -> str:
    """The Origin a browser page on the socket's own host sends: scheme, host and port."""
    from urllib.parse import urlsplit

    parts = urlsplit(ws_url)
    return f"{'https' if parts.scheme == 'wss' else 'http'}://{parts.netloc}"


class WebhookSink:
    """A local HTTP server keeping each JSON body POSTed to it with its arrival time."""

    def __init__(self) -> None:
        self.received: list[tuple[float, dict[str, Any]]] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                sink.received.append((time.monotonic(), body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, status: str, after: float, timeout: float = 180) -> float | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for at, body in self.received:
                if at >= after and body["status"] == status:
                    return at
            time.sleep(0.05)
        return None


class OrderSender:
    """The benches' till (``order_sender.mjs``): orders posted to ``base_url``'s ingest API at a
    steady rate from a Node.js process, after a warm-up the listener does not count."""

    SCRIPT = Path(__file__).with_name("order_sender.mjs")

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def send(self, tenants: Sequence[tuple[str, str]], *, rate: float, seconds: float, warmup_s: float = 0.0
             ) -> dict[str, Any]:  # fmt: skip
        """``{"sent", "statuses", "http_ms", "achieved_rate", "client_share"}``; order n goes to
        ``tenants[n % len]`` with the id ``slug:n``."""
        job = {"tenants": [list(t) for t in tenants], "rate": rate, "seconds": seconds, "warmup_s": warmup_s}
        done = subprocess.run(["node", str(self.SCRIPT), self.base_url], cwd=ROOT, input=json.dumps(job) + "\n",
                              capture_output=True, text=True, check=True, timeout=seconds + warmup_s + 120)  # fmt: skip
        result: dict[str, Any] = json.loads(done.stdout)
        result["client_share"] = result["cpu_s"] / result["wall_s"]
        return result


class Listener:
    """The feed benches' measuring client (``feed_listener.mjs``, Node.js): ``sockets`` staff
    sockets spread round-robin over ``slugs`` of the socket server at ``ws_base``
    (``ws://host:port``); open once ``start()`` returns."""

    SCRIPT = Path(__file__).with_name("feed_listener.mjs")

    def __init__(self, ws_base: str, slugs: Sequence[str], sockets: int, cookie: str) -> None:
        template = f"{ws_base}/ws/restaurants/{{slug}}/orders/"
        self.command = ["node", str(self.SCRIPT), template, ",".join(slugs), str(sockets), cookie,
                        http_origin(template)]  # fmt: skip
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(self.command, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True)  # fmt: skip
        assert self.process.stdout is not None
        if self.process.stdout.readline().strip() != "ready":
            raise RuntimeError("the listener could not open its sockets")

    def results(self, expected: int, settle_s: float = 30.0) -> dict[str, Any]:
        """Wait for ``expected`` order frames (at most ``settle_s``): the samples
        ``[[order_id, ms], ...]``, ``cross_tenant``, and the listener's ``client_share`` of a core."""
        assert self.process is not None and self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps({"expected": expected, "settle_s": settle_s}) + "\n")
        self.process.stdin.flush()
        result: dict[str, Any] = json.loads(self.process.stdout.readline())
        self.process.wait(10)
        result["client_share"] = result["cpu_s"] / result["wall_s"]
        return result

    def __enter__(self) -> Listener:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
