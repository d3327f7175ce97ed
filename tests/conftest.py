from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _need(what: str, available: bool) -> None:
    """Skip locally when a service is missing; under CI a missing service is a failure."""
    if available:
        return
    if IN_CI:
        pytest.fail(f"{what} is required under CI=true but is not available")
    pytest.skip(f"{what} is not available here")


def pytest_sessionstart(session: pytest.Session) -> None:
    if IN_CI:
        engine = settings.DATABASES["default"]["ENGINE"]
        problems = []
        if "postgresql" not in engine:
            problems.append("Postgres (DATABASE_URL)")
        if not settings.REDIS_URL:
            problems.append("Redis (REDIS_URL)")
        if problems:
            pytest.exit(f"CI=true but not reachable: {', '.join(problems)}", returncode=3)
    _drop_test_databases_of_dead_runs()


def _drop_test_databases_of_dead_runs() -> None:
    """A run that was killed leaves its test database behind; its process is gone."""
    import psutil

    db = settings.DATABASES["default"]
    if not db["ENGINE"].endswith("postgresql"):
        return
    import psycopg

    prefix = settings.TEST_DATABASE_PREFIX
    try:
        with psycopg.connect(host=db["HOST"], port=db["PORT"] or 5432, user=db["USER"],
                             password=db["PASSWORD"] or None, dbname="postgres", autocommit=True,
                             connect_timeout=3) as admin:  # fmt: skip
            names = [row[0] for row in admin.execute("SELECT datname FROM pg_database WHERE datname LIKE %s",
                                                     [prefix.replace("_", r"\_") + "%"])]  # fmt: skip
            for name in names:
                pid = name[len(prefix) :]
                if pid.isdigit() and not psutil.pid_exists(int(pid)):
                    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    except psycopg.OperationalError:
        return  # no server: the run says so where it needs one


@pytest.fixture(scope="session", autouse=True)
def _pools_closed_before_the_test_database_goes(django_db_setup: Any) -> Iterator[None]:
    """The connection pool keeps reconnecting to a dropped database otherwise, and says so."""
    yield
    from django.db import connections

    for conn in connections.all(initialized_only=True):
        close_pool = getattr(conn, "close_pool", None)
        if close_pool is not None:
            close_pool()


@pytest.fixture(autouse=True)
def _channel_layer_of_its_own() -> Iterator[None]:
    """channels_redis binds its locks and connections to the event loop that first used them,
    and each async test runs a loop of its own: so each test gets a layer instance of its own,
    as a server process has one for its one loop."""
    from channels.layers import channel_layers

    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


@pytest.fixture
def needs_redis() -> str:
    _need("Redis", bool(settings.REDIS_URL))
    return settings.REDIS_URL


RABBITMQ_URL = os.environ.get("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")


@pytest.fixture
def needs_rabbitmq() -> str:
    from kombu import Connection

    try:
        with Connection(RABBITMQ_URL, connect_timeout=2) as conn:
            conn.ensure_connection(max_retries=1)
        available = True
    except Exception:
        available = False
    _need(f"RabbitMQ ({RABBITMQ_URL})", available)
    return RABBITMQ_URL


@pytest.fixture
def needs_postgres() -> None:
    _need("Postgres", connection.vendor == "postgresql")


@pytest.fixture
def chromium_path() -> str:
    path = "/usr/bin/chromium"
    _need("Debian chromium (/usr/bin/chromium)", Path(path).exists())
    return path


@dataclass
class Staff:
    user: Any
    restaurant: Any
    token: str
    cookie: str  # the Cookie header of a logged-in session


def session_cookie_for(user: Any) -> str:
    from django.test import Client

    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


@pytest.fixture
def make_staff(db: Any) -> Callable[..., Staff]:
    from django.contrib.auth import get_user_model

    from realtime.models import Restaurant
    from realtime.services import restaurant_create, staff_add

    counter = {"n": 0}

    def make(slug: str | None = None, username: str | None = None, **kwargs: Any) -> Staff:
        counter["n"] += 1
        slug = slug or f"resto-{counter['n']}"
        token = ""
        restaurant = Restaurant.objects.filter(slug=slug).first()
        if restaurant is None:
            restaurant, token = restaurant_create(slug=slug, name=slug.title())
        username = username or f"staff-{slug}-{counter['n']}"
        membership, _ = staff_add(slug=slug, username=username, password="pw-123456", **kwargs)
        user = get_user_model().objects.get(pk=membership.user_id)
        return Staff(user=user, restaurant=restaurant, token=token, cookie=session_cookie_for(user))

    return make


@pytest.fixture
def make_restaurant(db: Any) -> Callable[..., Any]:
    from realtime.services import restaurant_create

    counter = {"n": 0}

    def make(slug: str | None = None) -> Any:
        counter["n"] += 1
        restaurant, _token = restaurant_create(slug=slug or f"place-{counter['n']}", name="A place")
        return restaurant

    return make


ARTIFACTS = ROOT / "test-artifacts"  # screenshots from the browser tests
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServerProcess:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return int(self.process.returncode)


def server_env() -> dict[str, str]:
    """The environment that points a child process at the test database and Redis."""
    db = settings.DATABASES["default"]
    env = dict(os.environ)
    env["DJANGO_SETTINGS_MODULE"] = "opsite.settings.test"
    if db["ENGINE"].endswith("postgresql"):
        env["DATABASE_URL"] = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    else:
        env["DATABASE_URL"] = f"sqlite:///{db['NAME']}"
    if settings.REDIS_URL:
        env["REDIS_URL"] = settings.REDIS_URL
        # Share the channel layer and cache prefix of this test run.
        env["REDIS_PREFIX"] = settings.REDIS_PREFIX
    return env


def wait_ready(url: str, process: subprocess.Popen[bytes], log: Path, *, ready_path: str = "/health/ready") -> None:
    """Until ``ready_path`` answers 200; fails with the server's log if it exits or takes 30 s."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}{ready_path}", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"server never became ready:\n{log.read_text()}")


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    started: list[ServerProcess] = []

    def start(
        extra_env: dict[str, str] | None = None, ready_path: str = "/health/ready", port: int | None = None
    ) -> ServerProcess:
        """A uvicorn process; ``port`` starts it again where an earlier one (now stopped) was."""
        port = port or free_port()
        log = tmp_path / f"server-{port}-{len(started)}.log"
        env = {**server_env(), **(extra_env or {})}
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "opsite.asgi:application", "--host", "127.0.0.1",
             "--port", str(port), "--ws-max-size", "1048576", "--ws-per-message-deflate", "false",
             "--no-proxy-headers"],
            cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        server = ServerProcess(url=f"http://127.0.0.1:{port}", process=process, log=log)
        started.append(server)
        wait_ready(server.url, process, log, ready_path=ready_path)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def start_celery(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start ``celery -A opsite <args>`` (a worker or beat) on the test database and broker;
    stopped with SIGTERM (a warm shutdown) at the end of the test unless the test stopped it."""
    started: list[subprocess.Popen[bytes]] = []

    def start(*args: str, extra_env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = (tmp_path / f"celery-{len(started)}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "opsite", *args, "--loglevel", "WARNING"],
            cwd=ROOT, env={**server_env(), **(extra_env or {})}, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.terminate()
    for process in started:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def cookie_value(cookie: str) -> str:
    parsed = SimpleCookie()
    parsed.load(cookie)
    return parsed["sessionid"].value


@pytest.fixture(scope="session", autouse=True)
def _close_stray_connections(django_db_setup: Any) -> Iterator[None]:
    """Threads used by async code keep their own connections; end them so the test database can be dropped."""
    yield
    db = settings.DATABASES["default"]
    if connection.vendor != "postgresql":
        return
    import psycopg

    with psycopg.connect(
        host=db["HOST"], port=db["PORT"] or 5432, user=db["USER"], password=db["PASSWORD"] or None,
        dbname="postgres", autocommit=True,
    ) as admin:  # fmt: skip
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            [db["NAME"]],
        )


@dataclass
class Sink:
    """A local HTTP server that records what is POSTed to it and answers ``status``."""

    url: str
    received: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    during: Callable[[], None] | None = None  # called while a POST is being answered


@pytest.fixture
def sink() -> Iterator[Sink]:
    state = Sink(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.received.append(json.loads(body))
            if state.during is not None:
                state.during()
            self.send_response(state.status)
            self.end_headers()

        def do_GET(self) -> None:  # a health endpoint, for dependency checks
            self.send_response(state.status)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()


@pytest.fixture
def s3_server() -> Iterator[str]:
    """A local S3-compatible server (moto in server mode), with an empty bucket."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-p", str(port), "-H", "127.0.0.1"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(url, timeout=1)
            break
        except httpx.HTTPError:
            assert time.monotonic() < deadline, "moto server did not start"
            time.sleep(0.2)
    boto3.client("s3", endpoint_url=url, aws_access_key_id="test", aws_secret_access_key="test",
                 region_name="us-east-1").create_bucket(Bucket="opsite-test")  # fmt: skip
    yield url
    process.terminate()
    process.wait(timeout=10)


def s3_storages(endpoint: str) -> dict[str, Any]:
    """STORAGES with backups in the test bucket of the S3 server at ``endpoint``."""
    return {**settings.STORAGES, "backups": {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": {
        "bucket_name": "opsite-test", "location": "backups", "endpoint_url": endpoint, "access_key": "test",
        "secret_key": "test", "region_name": "us-east-1", "file_overwrite": False}}}  # fmt: skip


def manage_py(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``manage.py <args>`` in a fresh process on the test database, as cron or a shell runs it."""
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env or server_env(),
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip


def refused_in_one_line(done: subprocess.CompletedProcess[str], says: str) -> bool:
    """Whether a command failed and its last line of errors says ``says``."""
    lines = done.stderr.strip().splitlines()
    return done.returncode != 0 and bool(lines) and says in lines[-1]
