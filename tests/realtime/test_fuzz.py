"""Property-based fuzzing of the public JSON endpoints on the real database: whatever the body
or query, never a 5xx, never a half-written batch, and the history stays readable."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from realtime.models import OrderEvent

pytestmark = pytest.mark.django_db

ANY_TEXT = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=40)  # NUL, surrogates too
SCALARS = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats()
           | ANY_TEXT)  # fmt: skip
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ANY_TEXT, inner, max_size=4),
                      max_leaves=12)  # fmt: skip
MOMENTS = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.timezones()).map(
    datetime.isoformat
)
FIELDS = {
    "type": st.sampled_from(list(OrderEvent.Type.values)) | VALUES,
    "order_id": st.text(min_size=1, max_size=64) | VALUES,
    "idempotency_key": st.none() | ANY_TEXT | VALUES,
    "total_amount": st.decimals(min_value=0, max_value=10**6, places=2).map(str) | VALUES,
    "currency": st.sampled_from(["EUR", "USD", "eur", ""]) | VALUES,
    "items_count": st.integers(min_value=-5, max_value=200_000) | VALUES,
    "payment_method": ANY_TEXT | VALUES,
    "table": ANY_TEXT | VALUES,
    "occurred_at": MOMENTS | ANY_TEXT | VALUES,
    "data": st.dictionaries(ANY_TEXT, VALUES, max_size=4) | VALUES,
}
EVENTS = st.fixed_dictionaries({}, optional=FIELDS)
BODIES = EVENTS | st.lists(EVENTS, min_size=1, max_size=4) | VALUES
FUZZ = settings(max_examples=150, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])  # fmt: skip


@pytest.fixture
def staff(make_staff: Any) -> Any:
    return make_staff()


def _post(client: Any, url: str, token: str, body: Any) -> Any:
    text = json.dumps(body)  # NaN and Infinity stay in, as a careless client would send them
    return client.post(url, data=text, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}")


@FUZZ
@given(body=BODIES)
def test_ingest_never_fails_and_never_half_writes(client, staff, body):
    before = OrderEvent.objects.count()
    response = _post(client, "/api/v1/orders/events", staff.token, body)
    assert response.status_code in (200, 201, 400), (response.status_code, response.content[:300])
    after = OrderEvent.objects.count()
    if response.status_code == 400:
        assert after == before
    elif response.status_code == 201:
        answers = response.json()
        assert after - before == len({a["id"] for a in (answers if isinstance(answers, list) else [answers])})


@FUZZ
@given(body=st.fixed_dictionaries({}, optional={"screen": VALUES, "action": VALUES, "duration_ms": VALUES,
                                                "device": VALUES, "network": VALUES}) | VALUES)  # fmt: skip
def test_frontend_metrics_never_fail(client, staff, body):
    response = _post(client, "/api/v1/metrics/frontend", staff.token, body)
    assert response.status_code in (202, 400), (response.status_code, response.content[:300])


@FUZZ
@given(body=st.lists(st.fixed_dictionaries({"error_type": ANY_TEXT, "message": ANY_TEXT},
                                           optional={"stack": VALUES, "device": VALUES}), max_size=3) | VALUES)  # fmt: skip
def test_frontend_errors_never_fail_and_are_all_or_nothing(client, staff, body):
    from monitoring.models import FrontendErrorGroup

    before = FrontendErrorGroup.objects.count()
    response = _post(client, "/api/v1/errors/frontend", staff.token, body)
    assert response.status_code in (202, 400), (response.status_code, response.content[:300])
    if response.status_code == 400:
        assert FrontendErrorGroup.objects.count() == before


@FUZZ
@given(after=ANY_TEXT | st.integers(min_value=-(2**80), max_value=2**80).map(str), limit=ANY_TEXT)
def test_catch_up_never_fails(client, staff, after, limit):
    from urllib.parse import urlencode

    client.force_login(staff.user)
    query = urlencode({"after_seq": after, "limit": limit}, errors="surrogatepass")
    response = client.get(f"/api/v1/restaurants/{staff.restaurant.slug}/orders/events?{query}")
    assert response.status_code in (200, 400), (response.status_code, response.content[:300])
