"""Alert evaluation cost and alert latency.

1. 500 rules (every metric and scope, five windows) over a day of minute snapshots for 4 hosts,
   50 restaurants with a week of hour rows and an hour of order events: time per evaluation,
   opsite's evaluator (each metric read once per evaluation) vs the same rules each reading
   their own metric. Target: <= 1 s.
2. From a threshold crossed to the first notification, with a real Celery worker and beat
   (alert evaluation every 15 s), a rule "orders per minute > 50, for 10 s" and a local webhook
   sink: 100 orders are committed, the time until the webhook receives the alert is measured.
   Target: <= evaluation interval + for duration + 5 s = 30 s.

    .venv/bin/python bench/alert_evaluation.py [--rules 500] [--rounds 3]
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import time
from datetime import timedelta
from decimal import Decimal
from typing import Any

from _support import ROOT, WebhookSink, bench_env, fresh_database, percentile

WINDOWS = [60, 300, 900, 1800, 3600]


def seed(hosts: int, restaurants: int) -> None:
    from django.utils import timezone

    from monitoring.models import CLUSTER, MetricSnapshot, NodeReport, Resolution, RestaurantSnapshot
    from realtime.models import OrderEvent, Restaurant
    from realtime.services import restaurant_create

    now = timezone.now().replace(second=0, microsecond=0)
    rng = random.Random(3)
    names = [f"web-{n + 1}" for n in range(hosts)]
    rows = [MetricSnapshot(resolution=Resolution.MINUTE, host=h, taken_at=now - timedelta(minutes=m),
                           cpu_percent=rng.uniform(5, 95), requests=600, p95_ms=60.0)
            for m in range(1440) for h in [*names, CLUSTER]]  # fmt: skip
    MetricSnapshot.objects.bulk_create(rows, batch_size=5000)
    for host in names:
        for pid in (1, 2, 3):
            minute = str(int(now.timestamp()) // 60)
            NodeReport.objects.create(node=f"{host}:{pid}", host=host, role="web", reported_at=now,
                                      expires_at=now + timedelta(days=1),
                                      figures={"cpu_percent": rng.uniform(5, 95), "memory_percent": 50.0,
                                               "disk_percent": 40.0, "sockets": 20,
                                               "traffic": {minute: {"n": 600, "e": 3, "b150": 597, "b350": 3}}})  # fmt: skip
    places = [restaurant_create(slug=f"r-{n}", name=f"R {n}")[0] for n in range(restaurants)]
    hour = now.replace(minute=0)
    RestaurantSnapshot.objects.bulk_create(
        RestaurantSnapshot(resolution=Resolution.HOUR, restaurant=r, taken_at=hour - timedelta(days=d), orders=60)
        for r in places
        for d in range(1, 8)
    )
    events = []
    for r in places:
        for seq in range(1, 101):
            kind = rng.choice(["order.created", "order.paid", "order.updated"])
            events.append(OrderEvent(restaurant=r, seq=seq, epoch=r.epoch, type=kind, order_id=f"o{seq}",
                                     total_amount=Decimal("12.00"), items_count=1,
                                     occurred_at=now - timedelta(seconds=rng.randint(0, 3600)),
                                     data={"payment_status": "failed"} if kind == "order.updated" else {}))  # fmt: skip
    OrderEvent.objects.bulk_create(events, batch_size=2000)
    Restaurant.objects.update(last_seq=100)


def make_rules(n: int) -> None:
    from monitoring.alerts.metrics import METRICS
    from monitoring.models import AlertRule

    AlertRule.objects.all().delete()
    pairs = [(m.key, scope) for m in METRICS.values() for scope in m.scopes]
    AlertRule.objects.bulk_create(
        AlertRule(name=f"rule {i}", metric=pairs[i % len(pairs)][0], scope=pairs[i % len(pairs)][1],
                  threshold=50 + i % 40, window_s=WINDOWS[i % len(WINDOWS)], for_s=60)
        for i in range(n)
    )  # fmt: skip


def evaluation_cost(rounds: int) -> None:
    from django.utils import timezone

    from monitoring.alerts.evaluation import Evaluator

    class Unshared(Evaluator):
        """Each rule reads its own metric: what a rule-at-a-time evaluator does."""

        def read(self, rule: Any) -> Any:
            self.readings.clear()
            return super().read(rule)

    for label, kind in (("each rule reads its metric", Unshared), ("opsite (one read per metric)", Evaluator)):
        samples = []
        result = None
        for _ in range(rounds):
            started = time.perf_counter()
            result = kind(timezone.now()).run()
            samples.append(time.perf_counter() - started)
        assert result is not None
        print(f"  {label:32} {result.rules} rules, {result.alerts} alerts: p50 {percentile(samples, 50) * 1000:7.0f} ms,"
              f" max {max(samples) * 1000:7.0f} ms")  # fmt: skip


def notification_latency(rounds: int) -> None:
    from monitoring.models import AlertRule, NotificationChannel
    from realtime.models import Restaurant
    from realtime.services import order_event_ingest
    from realtime.validation import clean_events

    AlertRule.objects.all().delete()
    sink = WebhookSink()
    channel = NotificationChannel.objects.create(name="bench sink", kind="webhook", target=sink.url)
    rule = AlertRule.objects.create(name="orders rush", metric="orders_per_minute", scope="overall", threshold=50,
                                    recovery_threshold=10, window_s=60, for_s=10)  # fmt: skip
    rule.channels.add(channel)
    restaurant = Restaurant.objects.first()
    assert restaurant is not None
    env = bench_env()
    logs = [open(f"/tmp/opsite-bench-{name}.log", "wb") for name in ("worker", "beat")]  # noqa: SIM115
    procs = [
        subprocess.Popen([sys.executable, "-m", "celery", "-A", "opsite", "worker", "-l", "WARNING", "-c", "2",
                          "--without-mingle", "--without-gossip"], cwd=ROOT, env=env, stdout=logs[0], stderr=subprocess.STDOUT),
        subprocess.Popen([sys.executable, "-m", "celery", "-A", "opsite", "beat", "-l", "WARNING"], cwd=ROOT, env=env,
                         stdout=logs[1], stderr=subprocess.STDOUT),
    ]  # fmt: skip
    try:
        time.sleep(20)  # beat and the worker settle; the first evaluations run
        latencies = []
        for n in range(rounds):
            time.sleep(random.uniform(0, 15))  # cross the threshold anywhere in the evaluation cycle
            batch = [{"type": "order.created", "order_id": f"rush-{n}-{i}", "total_amount": "9.50", "items_count": 1}
                     for i in range(100)]  # fmt: skip
            cleaned, _ = clean_events(batch, max_batch=500)
            order_event_ingest(restaurant=restaurant, events=cleaned)
            crossed = time.monotonic()
            fired = sink.wait_for("firing", crossed)
            latency = None if fired is None else fired - crossed
            latencies.append(latency)
            print(f"  round {n + 1}: threshold crossed → first notification "
                  f"{'never' if latency is None else f'{latency:.1f} s'}")  # fmt: skip
            if sink.wait_for("resolved", crossed, timeout=240) is None:
                print("  (no resolved notice within 240 s)")
        done = [x for x in latencies if x is not None]
        bound = 15 + rule.for_s + 5
        if done:
            verdict = "ok" if max(done) <= bound and len(done) == len(latencies) else "MISSED"
            print(f"  max {max(done):.1f} s, bound {bound} s (15 s interval + {rule.for_s} s for + 5 s): {verdict}")
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
        for log in logs:
            log.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rules", type=int, default=500)
    parser.add_argument("--hosts", type=int, default=4)
    parser.add_argument("--restaurants", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    fresh_database()
    seed(args.hosts, args.restaurants)
    make_rules(args.rules)
    print(
        f"evaluation of {args.rules} rules over a day of snapshots ({args.hosts} hosts, {args.restaurants} restaurants):"
    )
    evaluation_cost(rounds=10)
    print("threshold → notification with a real worker and beat:")
    notification_latency(args.rounds)


if __name__ == "__main__":
    main()
