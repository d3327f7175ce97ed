"""Metric snapshots: node reports, the minute job, hour rollups, retention and the dashboard's reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.core.management import call_command
from django.test import override_settings

from monitoring.dashboard.figures import dashboard_series
from monitoring.history.snapshots import settled_minute, snapshot_collect, snapshot_prune, snapshot_rollup
from monitoring.models import CLUSTER, MetricSnapshot, NodeReport, Resolution, RestaurantSnapshot
from monitoring.nodes.reports import node_id, node_report
from monitoring.requests.histogram import RELATIVE_ERROR, bucket_of
from monitoring.requests.traffic import Tally

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 10, 12, 0, 40, tzinfo=UTC)


def tally(count: int, ms: float, errors: int = 0) -> dict[str, int]:
    t = Tally(count=count, errors=errors)
    t.buckets[bucket_of(ms)] = count
    return t.as_fields()


def report(node: str, host: str, *, role: str = "web", expires_in_s: float = 30, minute: datetime | None = None,
           traffic: dict[str, int] | None = None, **figures: Any) -> NodeReport:  # fmt: skip
    minute_key = str(int((minute or settled_minute(NOW)).timestamp()) // 60)
    base = {"cpu_percent": 10.0, "memory_percent": 20.0, "disk_percent": 30.0, "load_1": 0.5,
            "process_rss_bytes": 100, "open_files": 10, "sockets": 0}  # fmt: skip
    return NodeReport.objects.create(
        node=node, host=host, role=role, reported_at=NOW - timedelta(seconds=5),
        expires_at=NOW + timedelta(seconds=expires_in_s),
        figures={**base, **figures, "traffic": {minute_key: traffic} if traffic else {}},
    )  # fmt: skip


def test_a_process_reports_its_real_figures():
    node_report(role="web")
    row = NodeReport.objects.get(node=node_id())
    assert row.role == "web"
    assert 0 <= row.figures["cpu_percent"] <= 100 and 0 < row.figures["memory_percent"] < 100
    assert row.figures["process_rss_bytes"] > 10 * 1024 * 1024 and row.figures["open_files"] > 0
    assert row.expires_at > row.reported_at
    node_report(role="web")  # renewed, not duplicated
    assert NodeReport.objects.filter(node=node_id()).count() == 1


def test_snapshot_records_every_live_node_and_none_that_expired():
    report("a:1", "host-a", traffic=tally(100, 10.0, errors=5), process_rss_bytes=1000, sockets=3)
    report("a:2", "host-a", role="worker", traffic=tally(100, 50.0), process_rss_bytes=2000, cpu_percent=55.0)
    report("b:1", "host-b", traffic=tally(50, 200.0), sockets=4)
    report("c:1", "host-c", expires_in_s=-1, traffic=tally(1000, 1.0))  # stopped reporting

    result = snapshot_collect(now=NOW)

    assert result.taken_at == datetime(2026, 3, 10, 11, 59, tzinfo=UTC)
    assert result.hosts == ["host-a", "host-b"]
    rows = {r.host: r for r in MetricSnapshot.objects.filter(resolution=Resolution.MINUTE)}
    assert set(rows) == {"host-a", "host-b", CLUSTER}
    a, b, everything = rows["host-a"], rows["host-b"], rows[CLUSTER]
    assert a.nodes == 2 and a.process_rss_bytes == 3000 and a.requests == 200 and a.errors == 5
    assert a.sockets == 3 and b.sockets == 4 and everything.sockets == 7
    assert a.error_rate == pytest.approx(0.025)
    assert everything.requests == 250 and everything.workers == 1 and everything.nodes == 3
    assert everything.request_rate == pytest.approx(250 / 60)
    assert everything.p50_ms == pytest.approx(50.0, rel=RELATIVE_ERROR)
    assert everything.p99_ms == pytest.approx(200.0, rel=RELATIVE_ERROR)
    assert everything.db_size_bytes and everything.db_size_bytes > 0
    snapshot_collect(now=NOW)  # a repeated run rewrites the same minute
    assert MetricSnapshot.objects.count() == 3


def test_the_snapshot_counts_orders_and_revenue_per_restaurant(make_restaurant):
    from realtime.models import OrderEvent

    restaurant = make_restaurant()
    minute = settled_minute(NOW)
    for n, kind in enumerate(["order.created", "order.created", "order.paid"]):
        OrderEvent.objects.create(restaurant=restaurant, seq=n + 1, epoch=restaurant.epoch, type=kind,
                                  order_id=f"o{n}", total_amount=Decimal("12.50"), items_count=1,
                                  occurred_at=minute + timedelta(seconds=10))  # fmt: skip
    snapshot_collect(now=NOW)
    row = RestaurantSnapshot.objects.get(restaurant=restaurant)
    assert (row.orders, row.paid, row.revenue) == (2, 1, Decimal("12.50"))


def minute_rows(host: str, start: datetime, minutes: int, **fields: Any) -> None:
    MetricSnapshot.objects.bulk_create(
        MetricSnapshot(resolution=Resolution.MINUTE, host=host, taken_at=start + timedelta(minutes=m), **fields)
        for m in range(minutes)
    )


def test_rollup_merges_percentiles_from_histograms_and_keeps_min_mean_max():
    hour = datetime(2026, 3, 10, 10, 0, tzinfo=UTC)
    fast, slow = bucket_of(10.0), bucket_of(1000.0)
    for m in range(60):
        # 59 quiet minutes at 10 ms and one minute of 100 requests at 1 s: averaging the minutes'
        # p99 would say ~27 ms; the hour's real p99 is 1 s.
        bucket, cpu = (slow, 90.0) if m == 30 else (fast, 10.0 + m % 3)
        MetricSnapshot.objects.create(resolution=Resolution.MINUTE, host="h", taken_at=hour + timedelta(minutes=m),
                                      requests=100, errors=1, cpu_percent=cpu, latency_histogram={str(bucket): 100},
                                      p99_ms=1000.0 if m == 30 else 10.0)  # fmt: skip
    assert snapshot_rollup(now=datetime(2026, 3, 10, 11, 5, tzinfo=UTC)) == {"hour": 1, "six hours": 0}
    row = MetricSnapshot.objects.get(resolution=Resolution.HOUR, host="h")
    assert row.taken_at == hour and row.requests == 6000 and row.errors == 60
    assert row.p99_ms == pytest.approx(1000.0, rel=RELATIVE_ERROR)
    assert row.p50_ms == pytest.approx(10.0, rel=RELATIVE_ERROR)
    assert row.request_rate == pytest.approx(6000 / 3600)
    assert row.spread["cpu_percent"] == [10.0, 90.0]
    expected_mean = (sum(10.0 + m % 3 for m in range(60) if m != 30) + 90.0) / 60
    assert row.cpu_percent == pytest.approx(expected_mean)
    assert sum(int(n) for n in row.latency_histogram.values()) == 6000


def test_rollup_waits_for_the_hour_to_finish_and_does_not_repeat_it():
    hour = datetime(2026, 3, 10, 10, 0, tzinfo=UTC)
    minute_rows("h", hour, 90, requests=1)
    assert snapshot_rollup(now=hour + timedelta(minutes=59))["hour"] == 0  # 10:00 is not finished yet
    assert snapshot_rollup(now=hour + timedelta(minutes=62))["hour"] == 1
    assert snapshot_rollup(now=hour + timedelta(minutes=63))["hour"] == 0
    assert MetricSnapshot.objects.filter(resolution=Resolution.HOUR).count() == 1
    # 12:02: 11:00 is rolled up from its 30 minutes, and 06:00-12:00 from its two hour rows
    assert snapshot_rollup(now=hour + timedelta(hours=2, minutes=2)) == {"hour": 1, "six hours": 1}
    assert MetricSnapshot.objects.get(resolution=Resolution.HOUR, taken_at=hour + timedelta(hours=1)).requests == 30
    six = MetricSnapshot.objects.get(resolution=Resolution.SIX_HOURS)
    assert six.taken_at == hour.replace(hour=6) and six.requests == 90 and six.request_rate == pytest.approx(90 / 21600)


@override_settings(OPSITE_SNAPSHOT_MINUTE_DAYS=2, OPSITE_SNAPSHOT_HOUR_DAYS=10)
def test_retention_deletes_what_is_past_it_and_nothing_else(make_restaurant):
    now = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)
    restaurant = make_restaurant()
    minute_rows("old", now - timedelta(days=2, minutes=30), 20)  # past 2 days
    minute_rows("young", now - timedelta(days=2) + timedelta(minutes=1), 20)  # just inside
    for days, host in ((11, "old-hour"), (9, "young-hour")):
        MetricSnapshot.objects.create(resolution=Resolution.HOUR, host=host, taken_at=now - timedelta(days=days))
    # an hour row as old as the pruned minute rows is kept: hours live longer
    MetricSnapshot.objects.create(resolution=Resolution.HOUR, host="mid-hour", taken_at=now - timedelta(days=3))
    RestaurantSnapshot.objects.create(
        resolution=Resolution.MINUTE, restaurant=restaurant, taken_at=now - timedelta(days=3)
    )
    RestaurantSnapshot.objects.create(
        resolution=Resolution.MINUTE, restaurant=restaurant, taken_at=now - timedelta(hours=1)
    )
    NodeReport.objects.create(node="gone", host="x", role="web", reported_at=now - timedelta(days=3),
                              expires_at=now - timedelta(days=3))  # fmt: skip

    deleted = snapshot_prune(now=now)

    assert deleted["metric_minute"] == 20 and deleted["metric_hour"] == 1 and deleted["restaurant_minute"] == 1
    assert set(MetricSnapshot.objects.values_list("host", flat=True).distinct()) == {"young", "young-hour", "mid-hour"}
    assert MetricSnapshot.objects.filter(host="young").count() == 20
    assert RestaurantSnapshot.objects.count() == 1 and not NodeReport.objects.filter(node="gone").exists()


def test_series_read_minute_rows_for_short_ranges_and_hour_rows_for_long_ones():
    now = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
    start = now - timedelta(hours=3)
    MetricSnapshot.objects.bulk_create(
        MetricSnapshot(resolution=Resolution.MINUTE, host=CLUSTER, taken_at=start + timedelta(minutes=m),
                       request_rate=float(m % 3), p95_ms=50.0 if m % 3 == 1 else 10.0)
        for m in range(180)
    )  # fmt: skip
    minute_rows("a", now - timedelta(minutes=90), 90, cpu_percent=40.0)
    minute_rows("b", now - timedelta(minutes=30), 30, cpu_percent=60.0)
    for h in range(48):
        MetricSnapshot.objects.create(resolution=Resolution.HOUR, host=CLUSTER, request_rate=1.0,
                                      taken_at=now - timedelta(hours=48 - h))  # fmt: skip
    one_hour = dashboard_series(range_key="1h", now=now)
    assert len(one_hour["cluster"]["t"]) == 60 and one_hour["resolution"] == 60
    assert one_hour["cluster"]["t"] == sorted(one_hour["cluster"]["t"])
    assert min(one_hour["cluster"]["t"]) >= int((now - timedelta(hours=1)).timestamp())
    assert set(one_hour["hosts"]) == {"a", "b"} and len(one_hour["hosts"]["a"]["t"]) == 60
    assert one_hour["hosts"]["b"]["cpu_percent"] == [60.0] * 30
    only_a = dashboard_series(range_key="1h", hosts=["a"], now=now)
    assert set(only_a["hosts"]) == {"a"} and len(only_a["cluster"]["t"]) == 60
    day = dashboard_series(range_key="24h", now=now)  # 1,440 minutes: three per point
    assert day["step"] == 180 and len(day["cluster"]["t"]) == 60
    assert set(day["cluster"]["request_rate"]) == {1.0}  # averaged
    assert set(day["cluster"]["p95_ms"]) == {50.0}  # the worst of the bucket, so no spike hides
    week = dashboard_series(range_key="7d", now=now)
    assert week["resolution"] == 3600 and len(week["cluster"]["t"]) == 48
    assert set(week["cluster"]["request_rate"]) == {1.0}
    MetricSnapshot.objects.create(resolution=Resolution.SIX_HOURS, host=CLUSTER, request_rate=3.0,
                                  taken_at=now - timedelta(days=30))  # fmt: skip
    quarter = dashboard_series(range_key="90d", now=now)
    assert quarter["resolution"] == 21600 and quarter["cluster"]["request_rate"] == [3.0]


def test_collect_snapshot_command_records_this_machine(capsys):
    call_command("collect_snapshot")
    out = capsys.readouterr().out
    assert out.startswith("snapshot ")
    # the minute just recorded finishes its hour only when it is the hour's last: then that hour rolls up
    hours = 1 if out.split(" UTC")[0].endswith(":59") else 0
    assert f"rolled up: {hours} hour, 0 six hours" in out, out
    from django.conf import settings

    assert MetricSnapshot.objects.filter(host=settings.OPSITE_NODE_NAME, resolution=Resolution.MINUTE).exists()
    assert MetricSnapshot.objects.filter(host=CLUSTER).exists()


def test_rollup_sums_each_restaurants_minutes(make_restaurant):
    hour = datetime(2026, 3, 10, 10, 0, tzinfo=UTC)
    restaurant = make_restaurant()
    minute_rows(CLUSTER, hour, 60)
    for m in (0, 15, 59, 60):  # the last one belongs to the next hour
        RestaurantSnapshot.objects.create(resolution=Resolution.MINUTE, restaurant=restaurant, orders=2, paid=1,
                                          revenue=Decimal("9.99"), taken_at=hour + timedelta(minutes=m))  # fmt: skip
    snapshot_rollup(now=hour + timedelta(minutes=62))
    row = RestaurantSnapshot.objects.get(resolution=Resolution.HOUR)
    assert (row.taken_at, row.orders, row.paid, row.revenue) == (hour, 6, 3, Decimal("29.97"))
