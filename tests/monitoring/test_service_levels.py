"""Per-restaurant service levels: the arithmetic of budgets and burn rates, the figures a real
socket process reports for a board that acknowledges, the minute snapshots that keep them, the
burn-rate alert, and the pages that show them."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from datetime import time as clock

import httpx
import pytest
import websockets
from django.contrib.auth import get_user_model

from common.clock import floor_to
from monitoring.alerts.defaults import ensure_default_rules
from monitoring.alerts.evaluation import alerts_evaluate
from monitoring.history.models import Resolution, RestaurantSnapshot
from monitoring.history.service_levels import Budget, service_levels
from monitoring.history.snapshots import snapshot_collect
from monitoring.models import Alert
from realtime.selectors import boards_of, service_minute

pytestmark = pytest.mark.django_db(transaction=True)

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def minute_rows(restaurant, minutes: int, *, deliveries: int, late: int, open_s: int = 60, connected_s: int = 60):
    RestaurantSnapshot.objects.bulk_create([
        RestaurantSnapshot(resolution=Resolution.MINUTE, taken_at=NOW - timedelta(minutes=m), restaurant=restaurant,
                           deliveries=deliveries, deliveries_late=late, open_s=open_s, connected_s=connected_s)
        for m in range(1, minutes + 1)
    ])  # fmt: skip


def test_budgets_and_burn_rates_are_the_workbooks_arithmetic():
    budget = Budget(total=10_000, bad=50, objective=0.99)
    assert budget.sli == pytest.approx(0.995) and budget.burn == pytest.approx(0.5)
    assert budget.remaining == pytest.approx(0.5)  # half the allowed 1 % spent
    assert Budget(total=1000, bad=30, objective=0.99).remaining == pytest.approx(-2.0)  # overspent three times
    assert Budget(total=0, bad=0, objective=0.99).burn is None and Budget(0, 0, 0.99).remaining == 1.0
    assert Budget(total=3600, bad=36, objective=0.999).burn == pytest.approx(10.0)


def test_service_levels_per_window_and_restaurant(make_restaurant, settings):
    calm, burning = make_restaurant("calm"), make_restaurant("burning")
    burning.slo_delivery_objective = 0.95
    burning.save()
    minute_rows(calm, 360, deliveries=100, late=0)
    minute_rows(burning, 360, deliveries=100, late=1)  # 1 % late all along
    RestaurantSnapshot.objects.filter(restaurant=burning, taken_at__gte=NOW - timedelta(minutes=5)).update(
        deliveries_late=80, connected_s=0
    )  # the last five minutes: 80 % late, no board connected
    levels = service_levels(NOW)
    assert levels["calm"]["delivery"]["sli"] == 1.0 and levels["calm"]["delivery"]["burn_fast"] == 0.0
    hot = levels["burning"]["delivery"]
    assert hot["objective"] == 0.95
    assert hot["burn"]["5m"] == pytest.approx(0.8 / 0.05)
    assert hot["burn"]["1h"] == pytest.approx(((55 * 1 + 5 * 80) / 6000) / 0.05)
    assert hot["burn_fast"] == pytest.approx(min(hot["burn"]["1h"], hot["burn"]["5m"]))
    connected = levels["burning"]["connected"]
    assert connected["burn"]["5m"] == pytest.approx(1.0 / 0.001)
    assert connected["sli"] == pytest.approx(1 - 300 / (360 * 60))


def test_the_fast_burn_alert_fires_for_the_restaurant_that_burns(make_restaurant):
    ensure_default_rules()
    make_restaurant("steady")
    hot = make_restaurant("hot")
    minute_rows(hot, 70, deliveries=100, late=20)  # 20 % late: 20x the 1 % a 99 % objective allows
    alerts_evaluate(now=NOW)
    alerts_evaluate(now=NOW + timedelta(seconds=130))  # past the rule's two minutes
    firing = Alert.objects.filter(state="firing", rule__name="Order delivery SLO burning fast")
    assert [a.labels for a in firing] == [{"restaurant": "hot"}]
    assert firing[0].value == pytest.approx(20.0, rel=0.05)


def test_a_board_that_acknowledges_is_counted_snapshotted_and_shown(make_staff, start_server, needs_redis, client):
    staff = make_staff()
    restaurant = staff.restaurant
    restaurant.opens_at, restaurant.closes_at = clock(0, 0), clock(23, 59)
    restaurant.save()
    server = start_server({"OPSITE_PRESENCE_TTL_S": "3", "OPSITE_FEED_ACK_EVERY": "5"})
    ws_url = server.url.replace("http", "ws") + f"/ws/restaurants/{restaurant.slug}/orders/"
    started = time.time()

    async def board_and_till() -> list[int]:
        acked: list[int] = []
        async with websockets.connect(ws_url, origin=server.url, additional_headers={"Cookie": staff.cookie}) as ws:
            hello = json.loads(await ws.recv())
            assert hello["ack_every"] == 5
            async with httpx.AsyncClient(base_url=server.url) as http:
                for n in range(20):
                    body = {"type": "order.created", "order_id": f"S{n}", "total_amount": "3.00", "items_count": 1}
                    answer = await http.post("/api/v1/orders/events", json=body,
                                             headers={"Authorization": f"Bearer {staff.token}"})  # fmt: skip
                    assert answer.status_code == 201
            while len(acked) < 4:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
                if frame.get("type", "").startswith("order.") and frame["seq"] % 5 == 0:
                    await ws.send(json.dumps({"type": "ack", "seq": frame["seq"]}))
                    acked.append(frame["seq"])
            await asyncio.sleep(1.5)  # the process reports within its presence interval (1 s here)
            shown = await asyncio.to_thread(boards_of, restaurant.slug)
            assert shown is not None and [b["last_seq"] for b in shown["boards"]] == [20]
            assert shown["boards"][0]["lag"] == 0 and shown["boards"][0]["user"] == staff.user.username
        return acked

    assert asyncio.run(board_and_till()) == [5, 10, 15, 20]
    time.sleep(1.5)  # the report after the board left
    minute = floor_to(datetime.fromtimestamp(started, UTC), 60)
    tallies = service_minute(minute)[restaurant.pk]
    later = service_minute(minute + timedelta(minutes=1)).get(restaurant.pk, {})  # the run may span a minute
    assert tallies["deliveries"] + later.get("deliveries", 0) == 20
    assert tallies["acks"] + later.get("acks", 0) == 4
    assert tallies["deliveries_late"] + tallies["acks_late"] == 0
    assert tallies["connected_s"] + later.get("connected_s", 0) >= 2 and tallies["open_s"] == 60

    snapshot_collect(now=minute + timedelta(seconds=90))
    row = RestaurantSnapshot.objects.get(resolution=Resolution.MINUTE, restaurant=restaurant, taken_at=minute)
    assert (row.deliveries, row.acks, row.open_s) == (tallies["deliveries"], tallies["acks"], 60)
    assert row.orders == 20  # the orders of that minute, kept on the same row

    get_user_model().objects.create_superuser("boss", "boss@example.com", "pw-123456")
    client.login(username="boss", password="pw-123456")
    page = client.get(f"/ops/restaurants/{restaurant.slug}/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "Orders on a board within 1 s" in text and "no board is connected" in text  # it has left
    assert client.get("/ops/restaurants/nowhere/").status_code == 404
