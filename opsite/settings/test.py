"""Test settings. Postgres and Redis come from DATABASE_URL / REDIS_URL, or from the local
servers when they answer; with neither, SQLite and the in-process layer (and the tests that
need Redis skip, except under CI=true, where a missing service fails the run)."""

import os
import socket

from .base import *  # noqa: F403
from .base import DATA_DIR, _database_from_url, env, redis_cache, redis_channel_layers


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


OPSITE_ENVIRONMENT = "test"
DEBUG = False
SECRET_KEY = "opsite-test-key"  # noqa: S105
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
DATA_DIR.mkdir(parents=True, exist_ok=True)

if not env.str("DATABASE_URL", default="") and _answers("127.0.0.1", 5432):
    DATABASE_URL = "postgres://postgres@127.0.0.1:5432/opsite"
    DATABASES = {"default": _database_from_url(DATABASE_URL)}

# Each test run gets a test database of its own (named after the run's process), so two runs on
# one server never drop or fill each other's; tests/conftest.py drops those of runs that died.
TEST_DATABASE_PREFIX = f"test_{DATABASES['default']['NAME']}_run"
if DATABASES["default"]["ENGINE"].endswith("postgresql"):
    # A run that repeats the same tests many times (mutation testing) names a database it keeps
    # between runs instead (OPSITE_TEST_DATABASE, with pytest --reuse-db).
    _test_name = env.str("OPSITE_TEST_DATABASE", default="") or f"{TEST_DATABASE_PREFIX}{os.getpid()}"
    DATABASES["default"]["TEST"] = {"NAME": _test_name}

REDIS_URL = env.str("REDIS_URL", default="")
if not REDIS_URL and _answers("127.0.0.1", 6379):
    REDIS_URL = "redis://127.0.0.1:6379/0"
# Each test run gets its own key space; server processes it starts are handed the same one.
REDIS_PREFIX = env.str("REDIS_PREFIX", default=f"opsite-test-{os.getpid()}")
if REDIS_URL:
    CACHES = redis_cache(REDIS_URL, REDIS_PREFIX)
    CHANNEL_LAYERS = redis_channel_layers(env.list("CHANNEL_REDIS_URLS", default=[REDIS_URL]), REDIS_PREFIX)
    CELERY_BROKER_URL = REDIS_URL
CELERY_TASK_ALWAYS_EAGER = False
# Tests read what they just did: no process-level caching of health, metrics or replica state.
OPSITE_HEALTH_CACHE_S = 0.0
OPSITE_METRICS_CACHE_S = 0.0
# Tests write node reports themselves, at the moments they choose: the background reporter of
# the test process (started by the first request) waits a day before its first report. Server
# processes a test starts may be given a shorter interval.
OPSITE_NODE_REPORT_S = float(os.environ.get("OPSITE_NODE_REPORT_S", 24 * 3600.0))
OPSITE_SNAPSHOT_LAG_S = 20.0
# servers started by the tests stop at once unless a test asks for a drain
OPSITE_DRAIN_S = float(os.environ.get("OPSITE_DRAIN_S", "0"))
OPSITE_REPLICA_CHECK_S = 0.0
# The alert watchdog evaluates in the background of every process; the test process evaluates
# only when a test says so. Server processes a test starts may be given a period.
OPSITE_ALERT_WATCHDOG_S = float(os.environ.get("OPSITE_ALERT_WATCHDOG_S", "0"))
