"""Labels a client chooses are bounded: thousands of distinct payment methods or screens make
at most the configured number of series, Redis fields and table rows, the rest ``other``."""

from __future__ import annotations

import json
import re
import uuid

import pytest

from common.labels import OTHER, LabelBudget
from monitoring.requests.traffic import FRONTEND, get_recorder, window
from realtime.services import order_event_ingest
from realtime.validation import clean_events

pytestmark = pytest.mark.django_db


def test_thousands_of_payment_methods_make_a_bounded_number_of_series(client, make_staff, settings):
    settings.OPS_API_TOKENS = ["card-test"]
    settings.OPSITE_MAX_PAYMENT_METHODS = 8
    staff = make_staff()
    raw = [{"type": "order.paid", "order_id": f"P{n}", "total_amount": str(1 + n % 7), "items_count": 1,
            "payment_method": f"method-{n}"} for n in range(2000)]  # fmt: skip
    for start in range(0, len(raw), 500):
        events, _ = clean_events(raw[start : start + 500], max_batch=500)
        order_event_ingest(restaurant=staff.restaurant, events=events)
    text = client.get("/metrics", HTTP_AUTHORIZATION="Bearer card-test").content.decode()
    series = re.findall(rf'^opsite_revenue_today{{payment_method="([^"]+)",restaurant="{staff.restaurant.slug}"}} (\S+)',
                        text, flags=re.M)  # fmt: skip
    assert len(series) == 9 and OTHER in dict(series), series  # 8 methods and "other"
    assert round(sum(float(v) for _, v in series), 2) == sum(1 + n % 7 for n in range(2000))  # nothing lost


def test_thousands_of_screens_make_a_bounded_number_of_keys(client, make_staff, settings, needs_redis):
    settings.OPSITE_FRONTEND_MAX_SCREENS = 20
    staff = make_staff(slug=f"screens-{uuid.uuid4().hex[:6]}")
    for batch in range(30):  # 3,000 distinct screen/action pairs
        reports = [{"screen": f"s{batch}-{n}", "action": "tap", "duration_ms": 5} for n in range(100)]
        response = client.post("/api/v1/metrics/frontend", data=json.dumps(reports), content_type="application/json",
                               HTTP_AUTHORIZATION=f"Bearer {staff.token}")  # fmt: skip
        assert response.status_code == 202
    get_recorder(FRONTEND).flush()
    mine = {k: v for k, v in window(5, namespace=FRONTEND).items() if k.startswith("s") or k == OTHER}
    admitted = [k for k in mine if k != OTHER]
    assert len(admitted) <= 20 and mine[OTHER].requests >= 3000 - 20


def test_the_budget_is_shared_across_processes(needs_redis):
    scope = uuid.uuid4().hex
    first, second = LabelBudget("test", lambda: 3), LabelBudget("test", lambda: 3)  # two processes' budgets
    assert [first.admit(scope, v) for v in "abc"] == ["a", "b", "c"]
    assert second.admit(scope, "d") == OTHER and second.admit(scope, "a") == "a"
