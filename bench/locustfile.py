"""Load for opsite with Locust: tills ingesting orders, staff boards on sockets, the ops
dashboard and the health probes, in the proportions of a busy evening.

Against any deployment (the fixture names its restaurants, their ingest tokens, the boards'
staff sessions, an admin session and an ops API token; ``bench/load.py --fixture-only`` writes
one for the bench database):

    OPSITE_LOAD_FIXTURE=load.json locust -f bench/locustfile.py --host https://ops.example.com

``OPSITE_LOAD_WS_URL`` sends the sockets elsewhere when they are not served behind the same host
(``ws://127.0.0.1:8001``). ``bench/load.py`` prepares a scratch database, starts the production
layout and runs this file headless.

Socket deliveries are reported as requests named ``order delivered``: their "response time" is
the time from the till's send to the board's receipt (both clocks are this machine's when the
client runs beside the servers).
"""

from __future__ import annotations

import itertools
import json
import os
import random
import time
import uuid
from typing import Any

import gevent
import websocket
from locust import HttpUser, User, between, constant, events, task

FIXTURE: dict[str, Any] = {}


@events.init.add_listener
def _load_fixture(**_: Any) -> None:
    path = os.environ.get("OPSITE_LOAD_FIXTURE", "/tmp/opsite-load.json")
    with open(path) as f:
        FIXTURE.update(json.load(f))


def _origin_of(ws_url: str) -> str:
    """What a board page served by the socket's own host sends as Origin (scheme, host, port);
    a deployment serving the page from another origin lists it in CSRF_TRUSTED_ORIGINS."""
    from urllib.parse import urlsplit

    parts = urlsplit(ws_url)
    return f"{'https' if parts.scheme == 'wss' else 'http'}://{parts.netloc}"


def _restaurant() -> dict[str, str]:
    return random.choice(FIXTURE["restaurants"])


class Till(HttpUser):
    """A point of sale: opens orders and pays most of them."""

    weight = 4
    wait_time = between(0.5, 1.5)

    @task
    def order(self) -> None:
        place = _restaurant()
        order_id = uuid.uuid4().hex[:16]
        headers = {"Authorization": f"Bearer {place['token']}"}
        opened = {"type": "order.created", "order_id": order_id, "idempotency_key": f"{order_id}-c",
                  "total_amount": "18.40", "items_count": 3, "data": {"sent": time.time()}}  # fmt: skip
        self.client.post("/api/v1/orders/events", json=opened, headers=headers, name="ingest order.created")
        if random.random() < 0.8:
            paid = {"type": "order.paid", "order_id": order_id, "idempotency_key": f"{order_id}-p",
                    "total_amount": "18.40", "items_count": 3, "payment_method": "card",
                    "data": {"sent": time.time()}}  # fmt: skip
            self.client.post("/api/v1/orders/events", json=paid, headers=headers, name="ingest order.paid")


_board_places = itertools.count()


class Board(User):
    """A staff member's order board: one socket, resumed with its position after a drop."""

    weight = 4
    wait_time = constant(1)

    def on_start(self) -> None:
        # Each board is its own staff member's session, as in a kitchen: a deployment caps the
        # sockets of one user (OPSITE_FEED_MAX_SOCKETS_PER_USER), so boards sharing one session
        # would be refused with 4429. Without "boards", every board uses the admin session.
        boards = FIXTURE.get("boards") or [{"slug": r["slug"], "cookie": FIXTURE["cookie"]}
                                           for r in FIXTURE["restaurants"]]  # fmt: skip
        board = boards[next(_board_places) % len(boards)]
        self.slug, self.cookie = board["slug"], board["cookie"]
        self.last_seq: int | None = None
        self.epoch = ""
        self.ws: websocket.WebSocket | None = None
        self.running = True
        self.reader = gevent.spawn(self._follow)

    def on_stop(self) -> None:
        self.running = False
        if self.ws is not None:
            self.ws.close()
        self.reader.kill(block=False)

    @task
    def stay(self) -> None:
        """The board only listens; its deliveries are reported by the reader."""

    def _url(self) -> str:
        base = os.environ.get("OPSITE_LOAD_WS_URL") or self.host.replace("http", "ws", 1)
        query = f"?last_seq={self.last_seq}&epoch={self.epoch}" if self.last_seq is not None else ""
        return f"{base}/ws/restaurants/{self.slug}/orders/{query}"

    def _fire(
        self, name: str, started: float, exc: Exception | None = None, response_time: float | None = None
    ) -> None:
        elapsed = (time.perf_counter() - started) * 1000 if response_time is None else response_time
        events.request.fire(request_type="WS", name=name, response_time=elapsed, response_length=0, exception=exc,
                            context={})  # fmt: skip

    def _follow(self) -> None:
        while self.running:
            started = time.perf_counter()
            try:
                self.ws = websocket.create_connection(self._url(), header=[f"Cookie: {self.cookie}"],
                                                      origin=_origin_of(self._url()), timeout=60)  # fmt: skip
            except Exception as exc:
                self._fire("connect", started, exc)
                gevent.sleep(1)
                continue
            self._fire("connect", started)
            try:
                while self.running:
                    self._frame(json.loads(self.ws.recv()))
            except Exception as exc:
                if self.running:
                    self._fire("socket closed", time.perf_counter(), exc)
                gevent.sleep(0.5)

    def _frame(self, frame: dict[str, Any]) -> None:
        kind = frame.get("type", "")
        if kind == "ping":
            assert self.ws is not None
            self.ws.send('{"type":"pong"}')
        elif kind == "hello" and self.last_seq is None:
            self.last_seq, self.epoch = frame["seq"], frame["epoch"]
        elif kind == "reset":
            self.last_seq, self.epoch = frame["seq"], frame["epoch"]
            self._fire("reset", time.perf_counter(), RuntimeError("the board had to reload"))
        elif kind.startswith("order."):
            self.last_seq = frame["seq"]
            sent = (frame.get("data") or {}).get("sent")
            if sent is not None:
                self._fire("order delivered", 0, response_time=(time.time() - float(sent)) * 1000)


class Dashboard(HttpUser):
    """An admin with /ops/ open: the live figures, and now and then the charts and tables."""

    weight = 1
    wait_time = between(4, 6)

    def on_start(self) -> None:
        self.client.headers["Cookie"] = FIXTURE["cookie"]
        # opening /ops/ loads the page, then its live figures, the first chart range and the tables
        self.page()
        self.live()
        self.client.get("/ops/api/series?range=1h", name="/ops/api/series")
        self.tables()

    @task(6)
    def live(self) -> None:
        self.client.get("/ops/api/live", name="/ops/api/live")

    @task(2)
    def series(self) -> None:
        choice = random.choice(["1h", "24h", "7d"])
        self.client.get(f"/ops/api/series?range={choice}", name="/ops/api/series")

    @task(1)
    def tables(self) -> None:
        self.client.get("/ops/api/tables", name="/ops/api/tables")

    @task(1)
    def page(self) -> None:
        self.client.get("/ops/", name="/ops/")


class Probe(HttpUser):
    """The load balancer's and Prometheus's view: probes every few seconds, a scrape now and then."""

    weight = 1
    wait_time = constant(2)

    def on_start(self) -> None:
        self.ops = {"Authorization": f"Bearer {FIXTURE['ops_token']}"}

    @task(6)
    def live(self) -> None:
        self.client.get("/health/live", name="/health/live")

    @task(6)
    def ready(self) -> None:
        self.client.get("/health/ready", name="/health/ready")

    @task(1)
    def scrape(self) -> None:
        self.client.get("/metrics", headers=self.ops, name="/metrics")

    @task(1)
    def detailed(self) -> None:
        self.client.get("/health/detailed", headers=self.ops, name="/health/detailed")
