"""The cache manager: the ``@cached`` decorator (TTL, skip flag, refresh, invalidation), removal
by key, by pattern and by namespace on the real Redis cache and the local-memory one, the hit
ratio per namespace, and warming as a web process starts."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter

import pytest
from django.core.cache import cache, caches
from django.test import override_settings

from common.cache import CacheError, cached, hit_ratios, invalidate, invalidate_namespace, invalidate_pattern, store
from monitoring.dashboard.warming import WARM_AT_START_KEY

from ..conftest import ROOT, manage_py, refused_in_one_line, server_env

LOCMEM = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "cache-manager"}}


@pytest.fixture(params=["configured", "locmem"])
def backend(request, needs_redis):
    """Each test on the configured cache (Redis here) and on the local-memory cache."""
    if request.param == "locmem":
        with override_settings(CACHES=LOCMEM):
            caches["default"].clear()  # its store outlives a test
            yield "locmem"
        return
    yield type(caches["default"]).__name__


@pytest.fixture(autouse=True)
def _empty_namespaces():
    for namespace in ("cm-a", "cm-b", "cm-ttl"):
        invalidate_namespace(namespace)
    yield


def test_the_decorator_computes_once_per_arguments_until_invalidated(backend):
    calls: Counter[tuple[int, str]] = Counter()

    @cached("cm-a", ttl=60)
    def price(item: int, currency: str = "EUR") -> str:
        calls[(item, currency)] += 1
        return f"{item}-{currency}-{calls[(item, currency)]}"

    assert price(1) == price(1) == "1-EUR-1"
    assert price(1, currency="CHF") == "1-CHF-1"
    assert price(2) == "2-EUR-1"
    assert price.invalidate(1) is True and price.invalidate(1) is False
    assert price(1) == "1-EUR-2" and price(2) == "2-EUR-1"
    assert price.refresh(2) == "2-EUR-2" and price(2) == "2-EUR-2"  # recomputed and stored now
    assert price.invalidate_all() == 3
    assert price(1, currency="CHF") == "1-CHF-2"


def test_the_ttl_bounds_a_value(backend):
    computed = []

    @cached("cm-ttl", ttl=1)
    def now() -> int:
        computed.append(1)
        return len(computed)

    assert now() == now() == 1
    time.sleep(1.3)
    assert now() == 2


def test_the_skip_flag_calls_straight_through(backend):
    calls = []
    skipping = {"on": True}

    @cached("cm-a", ttl=60, skip=lambda: skipping["on"])
    def read() -> int:
        calls.append(1)
        return len(calls)

    assert [read(), read()] == [1, 2]
    skipping["on"] = False
    assert [read(), read()] == [3, 3]

    @cached("cm-b", ttl=60, skip=True)
    def always() -> int:
        calls.append(1)
        return len(calls)

    assert always() != always()


def test_patterns_and_namespaces_remove_only_what_they_name(backend):
    for n in range(3):
        store("cm-a", (n,), n, timeout=60)
    store("cm-b", ("kept",), "kept", timeout=60)
    cache.set("unrelated:key", "kept", timeout=60)
    assert invalidate_pattern("c:cm-a:*") == 3
    assert invalidate_pattern("c:cm-a:*") == 0
    assert cache.get("unrelated:key") == "kept"
    store("cm-a", (9,), 9, timeout=60)
    assert invalidate_pattern("c:cm-?:*") == 2
    assert cache.get("unrelated:key") == "kept"
    assert invalidate("cm-b", "kept") is False


def test_another_deployments_keys_are_never_touched(needs_redis):
    import redis
    from django.conf import settings

    client = redis.Redis.from_url(settings.REDIS_URL)
    foreign = "another-deployment:1:c:cm-a:x"
    client.set(foreign, b"1", ex=60)
    store("cm-a", ("mine",), 1, timeout=60)
    try:
        assert invalidate_namespace("cm-a") == 1
        assert client.get(foreign) == b"1"
    finally:
        client.delete(foreign)


def test_hits_and_misses_are_counted_per_namespace(backend):
    @cached("cm-b", ttl=60)
    def value(n: int) -> int:
        return n

    before = hit_ratios(["cm-b"])["cm-b"]
    value(1), value(1), value(1), value(2)
    after = hit_ratios()["cm-b"]  # every namespace this process knows
    assert (after["hits"] - before["hits"], after["misses"] - before["misses"]) == (2, 2)


@pytest.mark.parametrize("namespace", ["", "Has Space", "x" * 65, "../etc"])
def test_a_bad_namespace_is_refused(namespace):
    with pytest.raises(CacheError, match="cache namespace"):
        invalidate_namespace(namespace)


@pytest.mark.parametrize(
    ("args", "says"),
    [(["--pattern", ""], "1-200 characters"), (["--key", "c:cm-a:*"], "use --pattern"),
     (["--namespace", "Bad Name"], "cache namespace"), ([], "one of the arguments")],
)  # fmt: skip
def test_the_command_refuses_bad_input_in_one_line(args, says):
    assert refused_in_one_line(manage_py("invalidate_cache", *args), says)


@pytest.mark.django_db(transaction=True)
def test_the_command_removes_a_namespace(needs_redis):
    store("cm-a", (1,), 1, timeout=60)
    store("cm-a", (2,), 2, timeout=60)
    done = subprocess.run([sys.executable, "manage.py", "invalidate_cache", "--namespace", "cm-a"], cwd=ROOT,
                          env=server_env(), capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0 and done.stdout.strip() == "cm-a: 2 deleted", done.stderr


@pytest.mark.django_db(transaction=True)
def test_the_first_web_process_warms_the_caches_as_it_starts(start_server, needs_redis):
    cache.delete(WARM_AT_START_KEY)
    invalidate_namespace("dashboard-series")
    invalidate_namespace("dashboard-tables")
    server = start_server()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not invalidate_pattern("c:dashboard-tables:*"):
        time.sleep(0.2)  # (removing what it finds is how the test counts it)
    assert time.monotonic() < deadline, f"nothing was warmed:\n{server.log.read_text()[-2000:]}"
    assert cache.get(WARM_AT_START_KEY), "the first process holds the warming for the others"
