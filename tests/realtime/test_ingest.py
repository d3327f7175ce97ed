from __future__ import annotations

import json
import threading
import time
from decimal import Decimal
from unittest import mock

import pytest
from django.conf import settings
from django.db import OperationalError, connection

from realtime.models import OrderEvent, Restaurant

from .conftest import event, ingest_sync

URL = "/api/v1/orders/events"


def post(client, token: str | None, body, content_type: str = "application/json"):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post(URL, data=data, content_type=content_type, **headers)


@pytest.fixture
def staff(make_staff):
    return make_staff()


def test_it_stores_an_event_and_answers_201(client, staff):
    response = post(client, staff.token, event("A1", total_amount=12.5, items_count=3, payment_method="card"))
    assert response.status_code == 201
    body = response.json()
    assert body["seq"] == 1 and body["restaurant"] == staff.restaurant.slug
    stored = OrderEvent.objects.get(pk=body["id"])
    assert stored.total_amount == Decimal("12.50") and stored.items_count == 3 and stored.payment_method == "card"


def test_it_refuses_missing_or_wrong_tokens(client, staff):
    assert post(client, None, event("A1")).status_code == 401
    assert post(client, "opk_wrong", event("A1")).status_code == 401
    assert post(client, staff.token + "x", event("A1")).status_code == 401
    assert not OrderEvent.objects.exists()


def test_it_refuses_non_json(client, staff):
    assert post(client, staff.token, "a=1", content_type="application/x-www-form-urlencoded").status_code == 415
    response = post(client, staff.token, "{broken")
    assert response.status_code == 400 and response.json()["error"] == "bad_json"


def test_it_refuses_bodies_over_one_megabyte(client, staff):
    body = json.dumps(event("A1", data={"blob": "x" * (1024 * 1024)}))
    assert post(client, staff.token, body).status_code == 413


def test_it_names_each_invalid_field(client, staff):
    bad = {"type": "order.eaten", "order_id": "", "total_amount": "-1", "items_count": -2, "currency": "euro",
           "occurred_at": "yesterday", "data": [1], "extra": 1}  # fmt: skip
    response = post(client, staff.token, bad)
    assert response.status_code == 400
    fields = response.json()["fields"]
    assert set(fields) == {
        "type",
        "order_id",
        "total_amount",
        "items_count",
        "currency",
        "occurred_at",
        "data",
        "extra",
    }


def test_a_rejected_batch_writes_nothing(client, staff):
    batch = [event(f"B{n}") for n in range(10)] + [event("bad", total_amount="abc")]
    response = post(client, staff.token, batch)
    assert response.status_code == 400
    assert "[10].total_amount" in response.json()["fields"]
    assert not OrderEvent.objects.exists()
    staff.restaurant.refresh_from_db()
    assert staff.restaurant.last_seq == 0


def test_a_batch_is_stored_in_order_and_answered_as_a_list(client, staff):
    response = post(client, staff.token, [event(f"B{n}") for n in range(500)])
    assert response.status_code == 201
    assert [a["seq"] for a in response.json()] == list(range(1, 501))
    assert post(client, staff.token, [event("x")] * 501).status_code == 400


def test_a_repeated_idempotency_key_answers_200_with_the_first_answer(client, staff):
    first = post(client, staff.token, event("A1", idempotency_key="pos-1"))
    again = post(client, staff.token, event("A1", idempotency_key="pos-1", total_amount="99"))
    assert first.status_code == 201 and again.status_code == 200
    assert again.json() == first.json()
    assert OrderEvent.objects.count() == 1
    mixed = post(client, staff.token, [event("A1", idempotency_key="pos-1"), event("A2", idempotency_key="pos-2"),
                                       event("A2", idempotency_key="pos-2")])  # fmt: skip
    assert mixed.status_code == 201
    answers = mixed.json()
    assert answers[0] == first.json() and answers[1] == answers[2] and answers[1]["seq"] == 2


def test_it_rate_limits_per_token(client, staff, settings):
    settings.OPSITE_INGEST_RATE_PER_MINUTE = 3
    codes = [post(client, staff.token, event(f"R{n}")).status_code for n in range(5)]
    assert codes[:3] == [201, 201, 201] and codes[3:] == [429, 429]
    limited = post(client, staff.token, event("R9"))
    assert int(limited["Retry-After"]) > 0


@pytest.mark.django_db(transaction=True)
def test_concurrent_ingest_keeps_seq_gap_free(make_staff, needs_postgres):
    staff = make_staff()
    writers, per_writer = 8, 25
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            restaurant = Restaurant.objects.get(pk=staff.restaurant.pk)
            for i in range(per_writer):
                ingest_sync(restaurant, event(f"w{n}-{i}"), event(f"w{n}-{i}", "order.paid"))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    seqs = list(OrderEvent.objects.filter(restaurant=staff.restaurant).order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, writers * per_writer * 2 + 1))
    staff.restaurant.refresh_from_db()
    assert staff.restaurant.last_seq == len(seqs)


@pytest.mark.django_db(transaction=True)
def test_concurrent_repeats_of_one_key_store_it_once(make_staff, needs_postgres):
    staff = make_staff()
    answers: list[object] = []

    def write() -> None:
        try:
            restaurant = Restaurant.objects.get(pk=staff.restaurant.pk)
            answers.append(ingest_sync(restaurant, event("same", idempotency_key="dup"))[0])
        finally:
            connection.close()

    threads = [threading.Thread(target=write) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert OrderEvent.objects.filter(idempotency_key="dup").count() == 1
    assert len(answers) == 6 and all(a == answers[0] for a in answers)


def test_catch_up_endpoint_pages_events_for_staff_only(client, make_staff):
    staff = make_staff()
    other = make_staff()
    ingest_sync(staff.restaurant, *[event(f"C{n}") for n in range(7)])
    url = f"/api/v1/restaurants/{staff.restaurant.slug}/orders/events"
    assert client.get(url).status_code == 401
    client.force_login(other.user)
    assert client.get(url).status_code == 403
    client.force_login(staff.user)
    page = client.get(url, {"after_seq": 2, "limit": 3}).json()
    assert [e["seq"] for e in page["events"]] == [3, 4, 5] and page["has_more"] and page["seq"] == 7
    rest = client.get(url, {"after_seq": 5}).json()
    assert [e["seq"] for e in rest["events"]] == [6, 7] and not rest["has_more"]
    assert client.get(url, {"after_seq": "-1"}).status_code == 400


def test_board_renders_todays_orders_for_staff(client, make_staff):
    staff = make_staff()
    ingest_sync(staff.restaurant, event("T1", table="4"), event("T1", "order.paid"), event("T2"))
    url = f"/restaurants/{staff.restaurant.slug}/"
    assert client.get(url).status_code == 302
    client.force_login(make_staff().user)
    assert client.get(url).status_code == 404
    client.force_login(staff.user)
    page = client.get(url)
    html = page.content.decode()
    assert page.status_code == 200
    assert 'data-order="T1"' in html and "status-paid" in html and 'data-order="T2"' in html
    assert 'data-table="4"' in html, "the payment must not erase the table the order was created with"
    assert 'data-seq="3"' in html


def test_order_totals_count_orders_and_revenue_by_payment_method(make_staff):
    from datetime import timedelta

    from django.utils import timezone

    from realtime.selectors import order_totals

    a, b = make_staff(), make_staff()
    ingest_sync(
        a.restaurant,
        event("1"), event("1", "order.paid", total_amount="20.00", payment_method="card"),
        event("2"), event("2", "order.paid", total_amount="5.50", payment_method="cash"),
        event("3"), event("3", "order.cancelled"),
        event("old", occurred_at=(timezone.now() - timedelta(days=2)).isoformat()),
    )  # fmt: skip
    ingest_sync(b.restaurant, event("x"), event("x", "order.paid", total_amount="7.00"))
    totals = order_totals(since=timezone.now() - timedelta(hours=1))
    assert totals[a.restaurant.slug] == {
        "orders": 3, "paid": 2, "cancelled": 1, "revenue": Decimal("25.50"),
        "revenue_by_payment_method": {"card": Decimal("20.00"), "cash": Decimal("5.50")},
    }  # fmt: skip
    assert totals[b.restaurant.slug]["revenue_by_payment_method"] == {"unknown": Decimal("7.00")}


@pytest.mark.django_db(transaction=True)
def test_a_failure_inside_the_transaction_after_rows_were_written_leaves_nothing(staff, needs_postgres):
    """The database refuses the third event of a batch after the seqs were taken and two rows
    written: nothing stays, and the next event still gets seq 1 (no gap)."""
    from django.db import DatabaseError

    from realtime.services import order_event_ingest
    from realtime.validation import clean_events

    with connection.cursor() as cursor:
        cursor.execute("""
            CREATE FUNCTION refuse_boom() RETURNS trigger AS $$ BEGIN
              IF NEW.order_id = 'BOOM' THEN RAISE EXCEPTION 'refused by the test'; END IF; RETURN NEW;
            END $$ LANGUAGE plpgsql;
            CREATE TRIGGER refuse_boom BEFORE INSERT ON realtime_orderevent FOR EACH ROW EXECUTE FUNCTION refuse_boom();
        """)
    try:
        events, _ = clean_events([event("OK-1"), event("OK-2"), event("BOOM")], max_batch=10)
        with pytest.raises(DatabaseError, match="refused by the test"):
            order_event_ingest(restaurant=staff.restaurant, events=events)
        assert not OrderEvent.objects.exists()
        assert Restaurant.objects.get(pk=staff.restaurant.pk).last_seq == 0
        again, _ = clean_events([event("OK-3")], max_batch=10)
        assert order_event_ingest(restaurant=staff.restaurant, events=again).answers[0]["seq"] == 1
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TRIGGER refuse_boom ON realtime_orderevent; DROP FUNCTION refuse_boom();")


@pytest.mark.django_db(transaction=True)
def test_on_postgres_a_batch_and_its_seqs_are_one_statement_outside_a_transaction(staff, needs_postgres):
    """No BEGIN, no COMMIT, no separate counter update: the seqs are taken and the rows written
    by one statement, atomic by itself; every field arrives as sent."""
    from datetime import UTC, datetime, timedelta, timezone

    from django.db import connection as db
    from django.test.utils import CaptureQueriesContext

    from realtime.services import order_event_ingest
    from realtime.validation import clean_events

    moment = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    local = moment.astimezone(timezone(timedelta(hours=2))).isoformat()
    sent = event("ONE-1", table="T4", payment_method="card", currency="EUR", data={"note": "ü", "n": [1, 2]},
                 idempotency_key="k-1", occurred_at=local, total_amount="12.34", items_count=3)  # fmt: skip
    cleaned, _ = clean_events([sent, event("ONE-2")], max_batch=2)
    with CaptureQueriesContext(db) as captured:
        result = order_event_ingest(restaurant=staff.restaurant, events=cleaned)
    writes = [q["sql"] for q in captured.captured_queries if not q["sql"].lstrip().upper().startswith("SELECT")]
    assert len(writes) == 1 and writes[0].startswith("WITH r AS (UPDATE"), writes
    assert not any(q["sql"].upper().startswith(("BEGIN", "COMMIT", "SAVEPOINT")) for q in captured.captured_queries)
    assert [a["seq"] for a in result.answers] == [1, 2]
    first = OrderEvent.objects.get(seq=1, restaurant=staff.restaurant)
    assert (first.order_id, first.table, first.payment_method, first.currency, first.idempotency_key) == (
        "ONE-1", "T4", "card", "EUR", "k-1")  # fmt: skip
    assert (first.total_amount, first.items_count, first.data) == (Decimal("12.34"), 3, {"note": "ü", "n": [1, 2]})
    assert first.occurred_at == moment and first.received_at is not None
    assert first.epoch == Restaurant.objects.get(pk=staff.restaurant.pk).epoch
    assert [r.pk for r in result.created] == list(OrderEvent.objects.order_by("seq").values_list("pk", flat=True))


@pytest.fixture
def unique_violations(needs_postgres):
    """The database answers the next ``n`` inserts of order events with a unique violation, as
    when another writer stored the same idempotency key first (a sequence counts them, since a
    counter in a table would be rolled back with each failed attempt)."""

    def arm(n: int) -> None:
        with connection.cursor() as cursor:
            cursor.execute(f"""
                CREATE SEQUENCE collide_count;
                CREATE FUNCTION collide() RETURNS trigger AS $$ BEGIN
                  IF nextval('collide_count') <= {int(n)} THEN
                    RAISE EXCEPTION 'stored by another writer' USING ERRCODE = 'unique_violation';
                  END IF;
                  RETURN NEW;
                END $$ LANGUAGE plpgsql;
                CREATE TRIGGER collide BEFORE INSERT ON realtime_orderevent FOR EACH ROW EXECUTE FUNCTION collide();
            """)

    yield arm
    with connection.cursor() as cursor:
        cursor.execute("DROP TRIGGER IF EXISTS collide ON realtime_orderevent; DROP FUNCTION IF EXISTS collide(); "
                       "DROP SEQUENCE IF EXISTS collide_count;")  # fmt: skip


@pytest.mark.django_db(transaction=True)
def test_an_insert_that_collides_is_tried_three_times_in_all(staff, unique_violations):
    unique_violations(2)
    assert [a["seq"] for a in ingest_sync(staff.restaurant, event("C-1"))] == [1]
    assert list(OrderEvent.objects.values_list("order_id", flat=True)) == ["C-1"]


@pytest.mark.django_db(transaction=True)
def test_a_third_collision_is_raised_and_nothing_is_stored(staff, unique_violations):
    from django.db import IntegrityError

    unique_violations(3)
    with pytest.raises(IntegrityError, match="stored by another writer"):
        ingest_sync(staff.restaurant, event("C-1"))
    assert not OrderEvent.objects.exists()
    assert Restaurant.objects.get(pk=staff.restaurant.pk).last_seq == 0


def test_saving_the_restaurant_after_an_ingest_neither_rewinds_nor_skips_its_seqs(staff):
    restaurant = staff.restaurant
    ingest_sync(restaurant, event("S-1"), event("S-2"))
    assert restaurant.last_seq == 2  # the object in hand knows its new head
    restaurant.name = "Renamed"
    restaurant.save()  # a whole-row save, as the admin does
    assert [a["seq"] for a in ingest_sync(restaurant, event("S-3"))] == [3]
    assert Restaurant.objects.get(pk=restaurant.pk).last_seq == 3


@pytest.mark.django_db(transaction=True)
def test_committed_events_are_marked_published_by_the_next_marking_pass(staff, needs_redis):
    """The ingest request sends and leaves the marking to the process's background pass, which
    comes well inside the outbox's grace period, so the sweep never re-sends them."""
    from realtime.services import order_event_ingest
    from realtime.services.feed import MARK_EVERY_S
    from realtime.validation import clean_events

    cleaned, _ = clean_events([event("P-1"), event("P-2")], max_batch=2)
    order_event_ingest(restaurant=staff.restaurant, events=cleaned)
    deadline = time.monotonic() + 6 * MARK_EVERY_S
    while OrderEvent.objects.filter(published_at__isnull=True).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert OrderEvent.objects.filter(published_at__isnull=False).count() == 2, "left for the outbox sweep"
    assert MARK_EVERY_S * 4 <= settings.OPSITE_OUTBOX_GRACE_S


@pytest.mark.django_db(transaction=True)
def test_a_marking_pass_that_fails_keeps_its_events_for_the_next(staff, needs_redis):
    from realtime.services.feed import PublishedMarks

    ingest_sync(staff.restaurant, event("M-1"))  # and marked by the process's own pass
    marks = PublishedMarks()
    OrderEvent.objects.update(published_at=None)
    marks.add(list(OrderEvent.objects.values_list("pk", flat=True)))
    away = mock.patch.object(OrderEvent.objects, "filter", side_effect=OperationalError("database away"))
    with away, pytest.raises(OperationalError):
        marks.flush()
    assert not OrderEvent.objects.filter(published_at__isnull=False).exists()
    marks.flush()
    assert OrderEvent.objects.filter(published_at__isnull=False).count() == 1


def test_saving_a_restaurant_loaded_earlier_keeps_the_orders_taken_since(client, staff):
    """The admin form (or a script) holds the row from before the orders came in: saving it
    changes what it edits and never writes the old stream position back."""
    stale = Restaurant.objects.get(pk=staff.restaurant.pk)
    assert post(client, staff.token, [event("A1"), event("A2")]).status_code == 201
    stale.name = "Renamed"
    stale.currency = "EUR"
    stale.save()
    fresh = Restaurant.objects.get(pk=stale.pk)
    assert (fresh.name, fresh.currency, fresh.last_seq) == ("Renamed", "EUR", 2)
    response = post(client, staff.token, event("A3"))
    assert response.status_code == 201 and response.json()["seq"] == 3


@pytest.mark.django_db(transaction=True)
def test_marks_go_in_bounded_batches_and_a_long_outage_keeps_only_the_newest(staff, needs_redis, monkeypatch):
    from django.test.utils import CaptureQueriesContext

    from realtime.services import feed

    ingest_sync(staff.restaurant, *[event(f"MB-{n}") for n in range(5)])
    OrderEvent.objects.update(published_at=None)
    pks = list(OrderEvent.objects.order_by("seq").values_list("pk", flat=True))
    monkeypatch.setattr(feed, "MARK_BATCH", 2)
    monkeypatch.setattr(feed, "MARKS_KEPT", 3)
    marks = feed.PublishedMarks()
    marks.add(pks)  # more than it keeps: the oldest two are left to the sweep
    with CaptureQueriesContext(connection) as captured:
        marks.flush()
    assert sum(q["sql"].startswith("UPDATE") for q in captured.captured_queries) == 2  # 3 ids, 2 per statement
    marked = set(OrderEvent.objects.filter(published_at__isnull=False).values_list("pk", flat=True))
    assert marked == set(pks[2:])
