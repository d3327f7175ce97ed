from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from django.db import connections

from common.replicas import monitor, replica_reads
from monitoring.models import Heartbeat
from tests.conftest import free_port

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

UP, DOWN = "replica_up", "replica_down"


@pytest.fixture(scope="module", autouse=True)
def _replica_connections(django_db_setup) -> Iterator[None]:
    """Two more connections to choose from: one to the test database, one to a closed port.
    Added before the test case is set up, so the test may use them."""
    base = connections["default"].settings_dict
    for alias, port in ((UP, base["PORT"]), (DOWN, free_port())):
        test = {**base["TEST"], "MIRROR": "default"}  # never flushed or created by the test runner
        connections.settings[alias] = {**base, "PORT": port, "OPTIONS": {"connect_timeout": 1}, "TEST": test}
    yield
    for alias in (UP, DOWN):
        connections[alias].close()
        del connections.settings[alias]


@pytest.fixture
def make_replica(settings, needs_postgres) -> Callable[..., str]:
    """Make one of them the configured replica."""

    def use(*, reachable: bool = True) -> str:
        alias = UP if reachable else DOWN
        settings.OPSITE_REPLICA_ALIASES = [alias]
        return alias

    return use


def test_dashboard_reads_go_to_the_replica_and_writes_to_the_primary(make_replica):
    alias = make_replica()
    with replica_reads():
        assert Heartbeat.objects.all().db == alias
        assert list(Heartbeat.objects.all()) == []  # the query really ran on the replica connection
    assert Heartbeat.objects.all().db == "default", "reads outside dashboard selectors stay on the primary"
    from django.db import router

    assert router.db_for_write(Heartbeat) == "default"


@pytest.mark.urls("tests.opsite.urls")
def test_a_read_after_a_write_in_the_same_request_stays_on_the_primary(client, make_replica):
    alias = make_replica()
    assert client.get("/test/replica/").json() == {"before": alias, "after": alias, "seen": False}
    assert client.get("/test/replica/?write=1").json() == {"before": alias, "after": "default", "seen": True}


def test_an_unreachable_replica_falls_back_to_the_primary_and_degrades_health(make_replica, admin_client):
    make_replica(reachable=False)
    with replica_reads():
        assert Heartbeat.objects.all().db == "default"
    replicas = admin_client.get("/health/detailed").json()["components"]["replicas"]
    assert replicas["status"] == "degraded" and "unreachable" in replicas["detail"]


def test_a_lagging_replica_falls_back(make_replica, settings):
    alias = make_replica()
    settings.OPSITE_REPLICA_MAX_LAG_S = -1  # any lag at all, even none, is too much
    with replica_reads():
        assert Heartbeat.objects.all().db == "default"
    state = monitor.state(alias)
    assert not state.ok and state.lag_s == 0.0 and "lagging" in state.detail


def test_metrics_report_replica_lag(make_replica, admin_client):
    alias = make_replica()
    text = admin_client.get("/metrics").content.decode()
    assert f'opsite_replica_lag_seconds{{replica="{alias}"}} 0.0' in text
    assert f'opsite_replica_usable{{replica="{alias}"}} 1.0' in text
