"""The Locust file runs against a real server and every kind of user does its part without a failure."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest
from django.contrib.auth import get_user_model

from tests.conftest import ROOT, server_env, session_cookie_for

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.processes,
    pytest.mark.usefixtures("needs_redis", "needs_postgres"),
]
TOKEN = "ops-load-token"


def test_the_locust_file_drives_every_part_without_failures(make_staff, start_server, tmp_path):
    places = [make_staff(slug=f"load-{n}") for n in range(2)]
    # 10 users at these weights make 4 boards: one staff member each, under a cap of one socket
    # per user, so boards sharing a session would be refused
    boards = [make_staff(slug=p.restaurant.slug) for p in places for _ in range(2)]
    admin = get_user_model().objects.create_superuser("load-admin", password="pw-123456")
    fixture = tmp_path / "load.json"
    fixture.write_text(json.dumps({
        "restaurants": [{"slug": p.restaurant.slug, "token": p.token} for p in places],
        "boards": [{"slug": b.restaurant.slug, "cookie": b.cookie} for b in boards],
        "cookie": session_cookie_for(admin),
        "ops_token": TOKEN,
    }))  # fmt: skip
    web = start_server({"OPS_API_TOKENS": TOKEN, "OPSITE_INGEST_RATE_PER_MINUTE": "100000",
                        "OPSITE_FEED_MAX_SOCKETS_PER_USER": "1"})  # fmt: skip
    run = subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(ROOT / "bench" / "locustfile.py"), "--headless", "-u", "10",
         "-r", "10", "-t", "12s", "--host", web.url, "--csv", str(tmp_path / "load"), "--only-summary",
         "--stop-timeout", "3"],
        cwd=ROOT, env={**server_env(), "OPSITE_LOAD_FIXTURE": str(fixture)}, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    with (tmp_path / "load_stats.csv").open() as f:
        rows = {row["Name"]: row for row in csv.DictReader(f) if row["Name"] != "Aggregated"}
    failures = {name: row["Failure Count"] for name, row in rows.items() if row["Failure Count"] != "0"}
    assert not failures, f"{failures}\n{run.stderr[-3000:]}"
    assert run.returncode == 0, run.stderr[-3000:]
    for name in ("ingest order.created", "connect", "order delivered", "/ops/api/live", "/health/ready"):
        assert name in rows and int(rows[name]["Request Count"]) > 0, f"no {name!r} in {sorted(rows)}"
