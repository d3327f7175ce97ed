"""Fault suite: real failures of the real services, with a PASS/FAIL line for each.

1. Redis killed during steady ingest, restarted 10 s later: the web keeps serving (ingest
   answers 201), /health/detailed says degraded, and after Redis returns every event reaches
   every socket (the outbox and the sockets' catch-up).
2. Postgres stopped, then started: /health/ready answers 503 within its timeout while
   /health/live stays 200; ready again without restarting the web process.
3. A worker killed (SIGKILL) in the middle of a backup: no partial backup is counted good (the
   run stays "running" until the reaper marks it failed, and no file is left). A worker stopped
   with SIGTERM in the middle of a backup finishes it first (warm shutdown) and exits 0.
4. Two beats for 70 s: no scheduled slot runs twice (the second claim is recorded as duplicate).
5. Beat stopped while a worker and a web process run: opsite's own "beat heartbeat" rule, which
   the watchdog evaluates while beat is down, notifies a real webhook within 60 s; beat started
   again: the alert resolves, and no run after the restart is a duplicate or missed.

It stops and starts this machine's PostgreSQL and Redis: run it on a machine of its own.

    .venv/bin/python bench/faults.py
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import websockets
from _support import ROOT, WebhookSink, bench_env, free_port, fresh_database, gunicorn, server, session_cookie, uvicorn

PG_VERSION = sorted(os.listdir("/etc/postgresql"))[-1] if os.path.isdir("/etc/postgresql") else ""
REDIS_START = ["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "-::1", "--port", "6379", "--save", "",
               "--appendonly", "no", "--dir", "/var/lib/redis", "--logfile", "/var/log/redis/ci.log"]  # fmt: skip
results: list[tuple[str, bool, str]] = []


def report(name: str, ok: bool, detail: str) -> None:
    results.append((name, ok, detail))
    print(f"{'PASS' if ok else 'FAIL'}  {name}: {detail}", flush=True)


def wait_for(check: Callable[[], bool], timeout: float, step: float = 0.2) -> float | None:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            if check():
                return time.monotonic() - started
        except Exception:  # noqa: S110 - the service is down: that is what is being waited out
            pass
        time.sleep(step)
    return None


def status(url: str, headers: dict[str, str] | None = None) -> int:
    return httpx.get(url, headers=headers or {}, timeout=5).status_code


async def redis_outage(ws_port: int, http_url: str, slug: str, token: str, cookie: str, ops: dict[str, str]) -> None:
    sockets = [await websockets.connect(f"ws://127.0.0.1:{ws_port}/ws/restaurants/{slug}/orders/",
                                        additional_headers={"Cookie": cookie}, origin=f"http://127.0.0.1:{ws_port}")
               for _ in range(20)]  # fmt: skip
    for ws in sockets:
        assert json.loads(await ws.recv())["type"] == "hello"
    seen: list[set[str]] = [set() for _ in sockets]

    async def listen(ws: websockets.ClientConnection, box: set[str]) -> None:
        async for raw in ws:
            frame = json.loads(raw)
            if frame.get("type") == "ping":  # as the board does, or the server closes a silent client (4408)
                await ws.send('{"type":"pong"}')
            if frame.get("type", "").startswith("order."):
                box.add(frame["order_id"])

    listeners = [asyncio.create_task(listen(ws, box)) for ws, box in zip(sockets, seen, strict=True)]
    sent: list[str] = []
    answers: dict[int, int] = {}
    degraded = False
    down_at = outage = 0.0
    async with httpx.AsyncClient(base_url=http_url, timeout=15) as client:
        for n in range(300):  # 30 s at 10 orders/s
            if n == 50:
                subprocess.run(["redis-cli", "-p", "6379", "shutdown", "nosave"], capture_output=True)
                down_at = time.monotonic()
            if n == 150:
                subprocess.run(REDIS_START, check=True)
                outage = time.monotonic() - down_at
            if n == 100:
                detailed = await client.get("/health/detailed", headers=ops)
                degraded = detailed.json().get("status") == "degraded"
            order_id = f"r{n}"
            response = await client.post("/api/v1/orders/events", headers={"Authorization": f"Bearer {token}"},
                                         json={"type": "order.created", "order_id": order_id,
                                               "total_amount": "1.00", "items_count": 1})  # fmt: skip
            answers[response.status_code] = answers.get(response.status_code, 0) + 1
            if response.status_code == 201:
                sent.append(order_id)
            await asyncio.sleep(0.1)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and any(set(sent) - box for box in seen):
        await asyncio.sleep(0.5)
    for task in listeners:
        task.cancel()
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    missing = max(len(set(sent) - box) for box in seen)
    report("Redis killed during ingest", answers.get(201, 0) == 300,
           f"down {outage:.1f} s; ingest answers {answers}")  # fmt: skip
    report("Redis down: health degraded", degraded, "/health/detailed said degraded" if degraded else "it did not")
    report("Redis back: every event delivered", missing == 0, f"{len(sent)} sent, at most {missing} missing per socket")


def postgres_outage(http_url: str) -> None:
    ready, live = f"{http_url}/health/ready", f"{http_url}/health/live"
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", PG_VERSION, "main", "stop", "-m", "fast"], check=True)
    try:
        unready = wait_for(lambda: status(ready) == 503, 15)
        report("Postgres down: ready 503", unready is not None, f"after {unready or 0:.1f} s")
        report("Postgres down: live 200", status(live) == 200, "live kept answering")
    finally:
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", PG_VERSION, "main", "start"], check=True)
    back = wait_for(lambda: status(ready) == 200, 60)
    report("Postgres back: ready again, no restart", back is not None, f"after {back or 0:.1f} s")


def backup_interrupted(env: dict[str, str], sig: signal.Signals) -> None:
    """A worker stopped in the middle of a backup: SIGTERM lets it finish (warm shutdown);
    SIGKILL must not leave a backup counted good (the reaper marks it failed, removes the file)."""
    from django.conf import settings

    from backups.models import Backup
    from backups.services import reap_stale_runs
    from backups.tasks import backup_create_task

    reason = f"fault-suite-{sig.name}"
    worker = subprocess.Popen([sys.executable, "-m", "celery", "-A", "opsite", "worker", "-l", "WARNING", "-c", "1"],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        backup_create_task.delay(reason)
        started = wait_for(lambda: Backup.objects.filter(reason=reason).exists(), 60, step=0.02)
        pool = _children(worker.pid)
        os.kill(worker.pid, sig)
        if sig == signal.SIGKILL:
            for child in pool:
                os.kill(child, signal.SIGKILL)
        code = worker.wait(timeout=300)
    finally:
        if worker.poll() is None:
            worker.kill()
    backup = Backup.objects.filter(reason=reason).first()
    if backup is None or started is None:
        report(f"worker {sig.name} mid-backup", False, "the backup never started")
        return
    if sig == signal.SIGTERM:
        report("worker SIGTERM mid-backup: the backup finishes", backup.status == Backup.Status.SUCCEEDED and code == 0,
               f"backup {backup.status}, {backup.size_bytes or 0} bytes; worker exit {code}")  # fmt: skip
        return
    not_good = backup.status in (Backup.Status.RUNNING, Backup.Status.FAILED)
    later = backup.started_at + _seconds(settings.OPSITE_BACKUP_TIME_LIMIT_S + 1)
    reaped = reap_stale_runs(now=later)
    backup.refresh_from_db()
    files = list(Path(settings.OPSITE_BACKUP_DIR).rglob(f"*-{backup.pk}.*"))
    report("worker SIGKILL mid-backup: not counted good", not_good and backup.status == Backup.Status.FAILED
           and backup.pk in reaped and not files, f"status after the kill then the reaper: {backup.status}; "
           f"files left: {[f.name for f in files] or 'none'}")  # fmt: skip


def _children(pid: int) -> list[int]:
    import psutil

    try:
        return [p.pid for p in psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return []


def _seconds(n: float):  # type: ignore[no-untyped-def]
    from datetime import timedelta

    return timedelta(seconds=n)


class psycopg_fill:
    """Enough rows that pg_dump takes a few seconds."""

    def __init__(self, rows: int) -> None:
        self.rows = rows

    def __enter__(self) -> None:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("CREATE TABLE IF NOT EXISTS fault_fill (id bigserial primary key, payload text)")
            cursor.execute("INSERT INTO fault_fill (payload) SELECT md5(g::text) || md5((g*7)::text) "
                           "FROM generate_series(1, %s) g", [self.rows])  # fmt: skip

    def __exit__(self, *exc: object) -> None:
        return None


def two_beats(env: dict[str, str]) -> None:
    from django.db.models import Count

    from monitoring.models import TaskRun

    procs = [subprocess.Popen([sys.executable, "-m", "celery", "-A", "opsite", "worker", "-l", "WARNING", "-c", "2"],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]  # fmt: skip
    for n in range(2):
        procs.append(subprocess.Popen([sys.executable, "-m", "celery", "-A", "opsite", "beat", "-l", "WARNING",
                                       "-s", f"/tmp/opsite-fault-beat-{n}"], cwd=ROOT, env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))  # fmt: skip
    try:
        time.sleep(70)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=60)
    runs = TaskRun.objects.exclude(status__in=["duplicate", "missed"])
    twice = runs.values("job", "scheduled_for").annotate(n=Count("id")).filter(n__gt=1).count()
    duplicates = TaskRun.objects.filter(status="duplicate").count()
    report("two beats: no slot run twice", twice == 0 and runs.exists(),
           f"{runs.count()} runs, {duplicates} duplicate sends refused, {twice} slots run twice")  # fmt: skip


def beat_stopped(env: dict[str, str]) -> None:
    from django.utils import timezone

    from common.scheduling import sync_periodic_tasks
    from monitoring.alerts.defaults import BEAT_RULE, BEAT_RULE_THRESHOLD_S
    from monitoring.ledger.runs import runs_audit
    from monitoring.models import AlertRule, Heartbeat, NotificationChannel, TaskRun

    sync_periodic_tasks()
    sink = WebhookSink()
    AlertRule.objects.all().delete()
    rule = AlertRule.objects.create(name=BEAT_RULE, metric="beat_heartbeat_age_s", threshold=BEAT_RULE_THRESHOLD_S,
                                    for_s=0, severity="critical")  # fmt: skip
    rule.channels.add(NotificationChannel.objects.create(name="drill", kind="webhook", target=sink.url))

    def beat() -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "celery", "-A", "opsite", "beat", "-l", "WARNING",
                                 "-s", "/tmp/opsite-fault-beat-watchdog"], cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip

    worker = subprocess.Popen([sys.executable, "-m", "celery", "-A", "opsite", "worker", "-l", "WARNING", "-c", "2"],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    http_port = free_port()
    first = beat()
    try:
        with server(gunicorn(http_port, workers=2), port=http_port, env=env):
            started = timezone.now()
            fresh = wait_for(lambda: all(h.at > started for h in Heartbeat.objects.filter(
                name__in=["beat", "alerts.evaluator"])) and Heartbeat.objects.count() >= 2, 90)  # fmt: skip
            if fresh is None:
                report("beat stopped: alert within 60 s", False, "beat and the evaluation never ran")
                return
            time.sleep(20)
            sink.received.clear()
            first.terminate()
            first.wait(timeout=30)
            notified = wait_for(lambda: any(b["kind"] == "firing" for _, b in sink.received), 120, step=0.5)
            report(
                "beat stopped: alert within 60 s",
                notified is not None and notified <= 60,
                f"notified {notified:.1f} s after beat stopped" if notified else "no notification in 120 s",
            )
            restart_at = timezone.now()
            second = beat()
            try:
                resolved = wait_for(lambda: any(b["kind"] == "resolved" for _, b in sink.received), 90, step=0.5)
                time.sleep(170)  # two crontab minutes past the restart, and the missed-run grace after them
            finally:
                second.terminate()
                second.wait(timeout=30)
            runs_audit()
            after = TaskRun.objects.filter(started_at__gte=restart_at)
            duplicates = after.filter(status="duplicate").count()
            missed = TaskRun.objects.filter(status="missed", scheduled_for__gte=restart_at).count()
            ran = after.exclude(status__in=["duplicate", "missed"]).count()
            detail = f"resolved {resolved:.1f} s after the restart" if resolved is not None else "never resolved"
            report("beat restarted: no duplicate, no missed run",
                   resolved is not None and ran > 0 and duplicates == 0 and missed == 0,
                   f"{detail}; {ran} runs after the restart, {duplicates} duplicates, {missed} missed")  # fmt: skip
    finally:
        worker.terminate()
        worker.wait(timeout=60)
        if first.poll() is None:
            first.kill()
        sink.server.shutdown()


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=["beat"], help="run one drill (the beat drill stops no service)")
    args = parser.parse_args()
    fresh_database()
    if args.only == "beat":
        beat_stopped(bench_env())
        finish()
        return
    from realtime.services import restaurant_create, staff_add

    restaurant, token = restaurant_create(slug="faults", name="Faults")
    staff_add(slug="faults", username="bench-admin", password=secrets.token_urlsafe(12))
    cookie = session_cookie("bench-admin")
    ops_token = secrets.token_urlsafe(16)
    env = bench_env(OPS_API_TOKENS=ops_token, OPSITE_HEALTH_READY_TIMEOUT_S="2")
    ws_port, http_port = free_port(), free_port()
    with (
        server(uvicorn(ws_port), port=ws_port, env=env),
        server(gunicorn(http_port, workers=2), port=http_port, env=env) as http_url,
    ):
        asyncio.run(redis_outage(ws_port, http_url, restaurant.slug, token, cookie,
                                 {"Authorization": f"Bearer {ops_token}"}))  # fmt: skip
        postgres_outage(http_url)
    from django.db import connections

    connections.close_all()  # the bench's own connections died with the server
    with psycopg_fill(3_000_000):
        backup_interrupted(env, signal.SIGTERM)
        backup_interrupted(env, signal.SIGKILL)
    two_beats(env)
    beat_stopped(env)
    finish()


def finish() -> None:
    failed = [name for name, ok, _ in results if not ok]
    print(
        f"\n{len(results) - len(failed)} of {len(results)} passed"
        + (f"; FAILED: {', '.join(failed)}" if failed else "")
    )
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
