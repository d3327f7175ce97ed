"""Settings shared by every mode. The environment is read here and nowhere else."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import environ
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from common.dbpool import pool_options
from common.redis_connection import cancellable_pool_options

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()

OPSITE_ENVIRONMENT = "development"
OPSITE_VERSION = "0.1.0"
DATA_DIR = Path(env.path("OPSITE_DATA_DIR", default=str(BASE_DIR / "var")))
# A node is one process on one host; it names itself in presence and metrics.
OPSITE_NODE_NAME: str = env.str("OPSITE_NODE_NAME", default=socket.gethostname())

DEBUG: bool = env.bool("DJANGO_DEBUG", default=False)
SECRET_KEY: str = env.str("SECRET_KEY", default="")
ALLOWED_HOSTS: list[str] = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS: list[str] = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "django_celery_beat",
    "django_prometheus",
    "opsite.apps.OpsiteConfig",
    "monitoring",
    "realtime",
    "backups",
    "releases",
]

# Request monitoring can be switched off only to measure what it costs (bench/).
OPSITE_REQUEST_MONITORING: bool = env.bool("OPSITE_REQUEST_MONITORING", default=True)
MIDDLEWARE = [
    *(["monitoring.requests.middleware.RequestMonitoringMiddleware"] if OPSITE_REQUEST_MONITORING else []),
    "monitoring.requests.middleware.ProbeHostMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "common.timezones.DisplayZoneMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "opsite.urls"
DEFAULT_EXCEPTION_REPORTER_FILTER = "common.redaction.ReporterFilter"  # URLs with passwords are masked
WSGI_APPLICATION = "opsite.wsgi.application"
ASGI_APPLICATION = "opsite.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]


def _database_from_url(url: str) -> dict[str, Any]:
    config: dict[str, Any] = env.db_url_config(url)
    if config["ENGINE"] == "django.db.backends.sqlite3":
        # WAL and IMMEDIATE transactions let web, worker and beat share one file.
        config["OPTIONS"] = {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    else:
        options = config.setdefault("OPTIONS", {})
        options["connect_timeout"] = env.int("DATABASE_CONNECT_TIMEOUT", default=5)
        pool_size = env.int("DATABASE_POOL_MAX_SIZE", default=10)
        if pool_size > 0:
            # One pool per process, shared by its threads: ASGI runs sync code on changing
            # threads, where per-thread persistent connections would pile up.
            # The pool checks a connection before lending it only when it has sat idle
            # (common.dbpool), instead of one more round trip on every request.
            options["pool"] = pool_options(max_size=pool_size, timeout=env.float("DATABASE_POOL_TIMEOUT", default=10.0))
            config["CONN_MAX_AGE"] = 0
        else:
            config["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
        config["CONN_HEALTH_CHECKS"] = True
    return config


DATABASE_URL: str = env.str("DATABASE_URL", default=f"sqlite:///{DATA_DIR / 'opsite.sqlite3'}")
DATABASES = {"default": _database_from_url(DATABASE_URL)}
# Read replicas (one or more, comma-separated); tests run them against the primary.
OPSITE_REPLICA_ALIASES: list[str] = []
for _index, _url in enumerate(env.list("DATABASE_REPLICA_URL", default=[])):
    OPSITE_REPLICA_ALIASES.append(f"replica{_index}")
    DATABASES[f"replica{_index}"] = {
        **_database_from_url(_url),
        "TEST": {"MIRROR": "default"},
    }
    DATABASES[f"replica{_index}"]["OPTIONS"]["connect_timeout"] = env.int("DATABASE_REPLICA_CONNECT_TIMEOUT", default=2)
    # No pool for a replica: while one is down a pool would hold every read (and the health
    # check) for its whole timeout, trying to reconnect; a plain connection fails at once.
    if DATABASES[f"replica{_index}"]["OPTIONS"].pop("pool", None) is not None:
        DATABASES[f"replica{_index}"]["CONN_MAX_AGE"] = 0
DATABASE_ROUTERS = ["common.replicas.ReplicaRouter"]
OPSITE_REPLICA_MAX_LAG_S: float = env.float("OPSITE_REPLICA_MAX_LAG_S", default=10.0)
OPSITE_REPLICA_CHECK_S: float = env.float("OPSITE_REPLICA_CHECK_S", default=5.0)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL: str = env.str("REDIS_URL", default="")


def redis_cache(url: str, prefix: str) -> dict[str, Any]:
    return {
        "default": {
            # Django's Redis cache, counting hits and misses for Prometheus.
            "BACKEND": "django_prometheus.cache.backends.redis.NativeRedisCache",
            "LOCATION": url,
            "KEY_PREFIX": prefix,
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
        }
    }


def redis_channel_layers(urls: list[str], prefix: str) -> dict[str, Any]:
    # The layer's blocking pop waits 5 s; the socket timeout must outlast it. A connection
    # that died with a Redis restart is retried once at once, not failed on first use.
    hosts = [
        {
            "address": url,
            "socket_timeout": 10,
            "socket_connect_timeout": 2,
            "retry": AsyncRetry(ExponentialBackoff(cap=0.2, base=0.02), retries=2),
            "retry_on_error": [RedisConnectionError],
            **cancellable_pool_options(url),
        }
        for url in urls
    ]
    return {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": hosts, "prefix": prefix, "capacity": 1000, "expiry": 60, "group_expiry": 86400},
        }
    }


REDIS_PREFIX: str = env.str("REDIS_PREFIX", default="opsite")
if REDIS_URL:
    CACHES = redis_cache(REDIS_URL, REDIS_PREFIX)
    CHANNEL_LAYERS = redis_channel_layers(env.list("CHANNEL_REDIS_URLS", default=[REDIS_URL]), REDIS_PREFIX)
else:
    CACHES = {"default": {"BACKEND": "django_prometheus.cache.backends.locmem.LocMemCache", "LOCATION": "opsite"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# Celery: Redis when configured, RabbitMQ when named, else a filesystem queue
# under the data directory so worker and beat need no server.
CELERY_BROKER_URL: str = env.str("CELERY_BROKER_URL", default=REDIS_URL or "filesystem://")
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, Any] = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    _queue_dir = DATA_DIR / "celery-queue"
    _queue_dir.mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue_dir),
        "data_folder_out": str(_queue_dir),
        "store_processed": False,
    }
elif CELERY_BROKER_URL.startswith("redis"):
    # Longer than any task's hard time limit, so a running task is never re-delivered.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 4 * 3600}
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_TIME_LIMIT = 30 * 60
CELERY_TASK_SOFT_TIME_LIMIT = 25 * 60
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Workers keep LOGGING below (Celery would replace the root handlers with its own format), so
# their lines carry the task's id and trace like a web process's carry the request's.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Beat writes each job's last run to the database after every send, so a beat that starts again
# knows what was sent and does not send it a second time.
CELERY_BEAT_SYNC_EVERY = 1
CELERY_TIMEZONE = "UTC"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
# Front-end libraries come from the npm registry (package.json / package-lock.json, `npm ci`)
# and are served from opsite's own static files: the dashboard needs no CDN.
STATICFILES_DIRS = [("vendor/uplot", BASE_DIR / "node_modules" / "uplot" / "dist")]
STATIC_ROOT = Path(env.path("STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
STORAGES: dict[str, Any] = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Serve straight from the apps' static folders when collectstatic has not run.
WHITENOISE_USE_FINDERS = True

OPS_API_TOKENS: list[str] = env.list("OPS_API_TOKENS", default=[])

# Backups: files go to STORAGES["backups"], the local backup directory unless S3 is named.
OPSITE_BACKUP_DIR = Path(env.path("OPSITE_BACKUP_DIR", default=str(DATA_DIR / "backups")))
# Point-in-time recovery (PostgreSQL): the WAL receiver's slot and local spool, whether commits
# wait for it (synchronous), how often it ships finished segments, and base backups kept.
OPSITE_WAL_SLOT: str = env.str("OPSITE_WAL_SLOT", default="opsite_wal")
OPSITE_WAL_SPOOL_DIR = Path(env.path("OPSITE_WAL_SPOOL_DIR", default=str(OPSITE_BACKUP_DIR / "wal-spool")))
OPSITE_WAL_SYNCHRONOUS: bool = env.bool("OPSITE_WAL_SYNCHRONOUS", default=False)
OPSITE_WAL_SHIP_INTERVAL_S: float = env.float("OPSITE_WAL_SHIP_INTERVAL_S", default=1.0)
OPSITE_PITR_KEEP_BASE: int = env.int("OPSITE_PITR_KEEP_BASE", default=2)
# Restore drills restore into a scratch cluster under this directory (empty: the system's temp directory).
OPSITE_PITR_SCRATCH_DIR: str = env.str("OPSITE_PITR_SCRATCH_DIR", default="")
OPSITE_BACKUP_S3_BUCKET: str = env.str("OPSITE_BACKUP_S3_BUCKET", default="")
if OPSITE_BACKUP_S3_BUCKET:
    from botocore.config import Config as S3ClientConfig

    STORAGES["backups"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": OPSITE_BACKUP_S3_BUCKET,
            "location": env.str("OPSITE_BACKUP_S3_PREFIX", default="opsite-backups"),
            "endpoint_url": env.str("OPSITE_BACKUP_S3_ENDPOINT_URL", default="") or None,
            "region_name": env.str("OPSITE_BACKUP_S3_REGION", default="") or None,
            "access_key": env.str("OPSITE_BACKUP_S3_ACCESS_KEY", default="") or None,
            "secret_key": env.str("OPSITE_BACKUP_S3_SECRET_KEY", default="") or None,
            "default_acl": "private",
            "file_overwrite": False,
            # an unreachable store fails a check or a backup in seconds, not after minutes
            "client_config": S3ClientConfig(
                connect_timeout=5, read_timeout=60, retries={"max_attempts": 3, "mode": "standard"}
            ),
        },
    }
else:
    STORAGES["backups"] = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(OPSITE_BACKUP_DIR / "files")},
    }
OPSITE_BACKUP_ZSTD_LEVEL: int = env.int("OPSITE_BACKUP_ZSTD_LEVEL", default=3)
OPSITE_BACKUP_ZSTD_THREADS: int = env.int("OPSITE_BACKUP_ZSTD_THREADS", default=1)
OPSITE_RESTORE_JOBS: int = env.int("OPSITE_RESTORE_JOBS", default=2)
# Below the broker's visibility timeout, so a running backup is never handed to a second worker.
OPSITE_BACKUP_TIME_LIMIT_S: int = env.int("OPSITE_BACKUP_TIME_LIMIT_S", default=3 * 3600)
OPSITE_BACKUP_KEEP_DAYS: int = env.int("OPSITE_BACKUP_KEEP_DAYS", default=14)
OPSITE_BACKUP_KEEP_MIN: int = env.int("OPSITE_BACKUP_KEEP_MIN", default=7)
OPSITE_BACKUP_MAX_AGE_S: int = env.int("OPSITE_BACKUP_MAX_AGE_S", default=26 * 3600)

# Live order feed.
# How far an order event's occurred_at may lie from the server's clock (tills buffer offline).
OPSITE_EVENT_MAX_FUTURE_S: float = env.float("OPSITE_EVENT_MAX_FUTURE_S", default=24 * 3600.0)
OPSITE_EVENT_MAX_PAST_S: float = env.float("OPSITE_EVENT_MAX_PAST_S", default=90 * 24 * 3600.0)
# Client-chosen labels: payment methods per restaurant in the revenue figures (the rest count
# as "other"), and screen/action pairs per restaurant in the frontend statistics.
OPSITE_MAX_PAYMENT_METHODS: int = env.int("OPSITE_MAX_PAYMENT_METHODS", default=8)
OPSITE_FRONTEND_MAX_SCREENS: int = env.int("OPSITE_FRONTEND_MAX_SCREENS", default=100)
OPSITE_FEED_HEARTBEAT_S: float = env.float("OPSITE_FEED_HEARTBEAT_S", default=25.0)
OPSITE_FEED_CLIENT_TIMEOUT_S: float = env.float("OPSITE_FEED_CLIENT_TIMEOUT_S", default=10.0)
OPSITE_FEED_REPLAY_MAX: int = env.int("OPSITE_FEED_REPLAY_MAX", default=50_000)
OPSITE_FEED_REPLAY_PAGE: int = env.int("OPSITE_FEED_REPLAY_PAGE", default=1000)
# Resume reads of one restaurant's sockets arriving within this window share their queries.
OPSITE_FEED_RESUME_BATCH_MS: float = env.float("OPSITE_FEED_RESUME_BATCH_MS", default=10.0)
# Each process keeps each restaurant's stream head (read again after this long) and recent frames.
OPSITE_FEED_HEAD_TTL_S: float = env.float("OPSITE_FEED_HEAD_TTL_S", default=30.0)
OPSITE_FEED_RECENT_FRAMES: int = env.int("OPSITE_FEED_RECENT_FRAMES", default=2000)
# Boards acknowledge every Nth live frame (its seq divisible by N): the delivery time as they see it.
OPSITE_FEED_ACK_EVERY: int = env.int("OPSITE_FEED_ACK_EVERY", default=10)
# The board keeps finished orders (paid, completed, cancelled) in view this long, then folds them away.
OPSITE_BOARD_FINISHED_VISIBLE_S: float = env.float("OPSITE_BOARD_FINISHED_VISIBLE_S", default=600.0)
# Service levels per restaurant (each restaurant may set its own objectives).
OPSITE_SLO_DELIVERY_WITHIN_S: float = env.float("OPSITE_SLO_DELIVERY_WITHIN_S", default=1.0)
OPSITE_SLO_DELIVERY_OBJECTIVE: float = env.float("OPSITE_SLO_DELIVERY_OBJECTIVE", default=0.99)
OPSITE_SLO_CONNECTED_OBJECTIVE: float = env.float("OPSITE_SLO_CONNECTED_OBJECTIVE", default=0.999)
OPSITE_SLO_WINDOW_DAYS: int = env.int("OPSITE_SLO_WINDOW_DAYS", default=30)
OPSITE_FEED_OUTBOUND_MAX: int = env.int("OPSITE_FEED_OUTBOUND_MAX", default=256)
OPSITE_FEED_MAX_SOCKETS_PER_USER: int = env.int("OPSITE_FEED_MAX_SOCKETS_PER_USER", default=10)
OPSITE_FEED_MAX_FRAME_BYTES = 64 * 1024
OPSITE_FEED_MAX_BAD_FRAMES: int = env.int("OPSITE_FEED_MAX_BAD_FRAMES", default=20)
OPSITE_FEED_ACCESS_RECHECK_S: float = env.float("OPSITE_FEED_ACCESS_RECHECK_S", default=30.0)
OPSITE_PRESENCE_TTL_S: int = env.int("OPSITE_PRESENCE_TTL_S", default=45)
OPSITE_OUTBOX_GRACE_S: float = env.float("OPSITE_OUTBOX_GRACE_S", default=5.0)

# Ingest API.
OPSITE_INGEST_MAX_BODY_BYTES = 1024 * 1024
OPSITE_INGEST_MAX_BATCH = 500
OPSITE_LOGIN_RATE_PER_MINUTE: int = env.int("OPSITE_LOGIN_RATE_PER_MINUTE", default=20)  # per address
OPSITE_LOGIN_USER_RATE_PER_MINUTE: int = env.int("OPSITE_LOGIN_USER_RATE_PER_MINUTE", default=10)  # address+user
OPSITE_LOGIN_USER_GLOBAL_RATE_PER_MINUTE: int = env.int("OPSITE_LOGIN_USER_GLOBAL_RATE_PER_MINUTE", default=100)
# Proxies (addresses or networks) whose X-Forwarded-For is believed; none by default.
OPSITE_TRUSTED_PROXIES: list[str] = env.list("OPSITE_TRUSTED_PROXIES", default=[])
OPSITE_INGEST_RATE_PER_MINUTE: int = env.int("OPSITE_INGEST_RATE_PER_MINUTE", default=6000)

# Health.
# The index advisor: statement timeout of its EXPLAINs, and the largest table it builds a trial
# index on (in a rolled-back transaction) when the server has no HypoPG.
OPSITE_ADVISOR_TIMEOUT_MS: int = env.int("OPSITE_ADVISOR_TIMEOUT_MS", default=5000)
OPSITE_ADVISOR_TRIAL_MAX_ROWS: int = env.int("OPSITE_ADVISOR_TRIAL_MAX_ROWS", default=100_000)
# The first web process of a deployment fills the warmed caches in the background at start.
OPSITE_CACHE_WARM_ON_START: bool = env.bool("OPSITE_CACHE_WARM_ON_START", default=True)
OPSITE_CACHE_WARM_START_LOCK_S: int = env.int("OPSITE_CACHE_WARM_START_LOCK_S", default=60)
OPSITE_HEALTH_CHECK_TIMEOUT_S: float = env.float("OPSITE_HEALTH_CHECK_TIMEOUT_S", default=2.0)
OPSITE_HEALTH_READY_TIMEOUT_S: float = env.float("OPSITE_HEALTH_READY_TIMEOUT_S", default=3.0)
OPSITE_HEALTH_DETAILED_TIMEOUT_S: float = env.float("OPSITE_HEALTH_DETAILED_TIMEOUT_S", default=5.0)
OPSITE_HEALTH_CACHE_S: float = env.float("OPSITE_HEALTH_CACHE_S", default=1.0)
OPSITE_HEALTH_QUEUE_DEPTH_MAX: int = env.int("OPSITE_HEALTH_QUEUE_DEPTH_MAX", default=1000)
OPSITE_HEALTH_SYSTEM_PERCENT_MAX: float = env.float("OPSITE_HEALTH_SYSTEM_PERCENT_MAX", default=90.0)
OPSITE_BEAT_MAX_AGE_S: float = env.float("OPSITE_BEAT_MAX_AGE_S", default=180.0)
# External services to watch: name=url pairs, comma-separated.
OPSITE_DEPENDENCIES: dict[str, str] = env.dict("OPSITE_DEPENDENCIES", default={})
OPSITE_DEPENDENCY_TIMEOUT_S: float = env.float("OPSITE_DEPENDENCY_TIMEOUT_S", default=1.5)
OPSITE_DEPENDENCY_FAILURES: int = env.int("OPSITE_DEPENDENCY_FAILURES", default=3)
OPSITE_DEPENDENCY_RESET_S: float = env.float("OPSITE_DEPENDENCY_RESET_S", default=30.0)

# Request and query monitoring, Prometheus.
OPSITE_METRICS_FLUSH_S: float = env.float("OPSITE_METRICS_FLUSH_S", default=5.0)
# on SIGTERM a web process answers not-ready and keeps serving this long before it stops
OPSITE_DRAIN_S: float = env.float("OPSITE_DRAIN_S", default=5.0)
# every process reports its host and itself this often; a node silent for 3 reports is gone
OPSITE_NODE_REPORT_S: float = env.float("OPSITE_NODE_REPORT_S", default=15.0)
# a minute is recorded once this long has passed after it: every node has flushed its request
# tallies and reported them by then (at least OPSITE_NODE_REPORT_S + OPSITE_METRICS_FLUSH_S)
OPSITE_SNAPSHOT_LAG_S: float = env.float("OPSITE_SNAPSHOT_LAG_S", default=OPSITE_NODE_REPORT_S + OPSITE_METRICS_FLUSH_S)
# metric snapshots: minute rows, and hour and six-hour rows, are kept this many days
OPSITE_SNAPSHOT_MINUTE_DAYS: int = env.int("OPSITE_SNAPSHOT_MINUTE_DAYS", default=14)
OPSITE_SNAPSHOT_HOUR_DAYS: int = env.int("OPSITE_SNAPSHOT_HOUR_DAYS", default=400)
# Email (alert notifications): smtp://user:pass@host:587 (+ ?ssl / ?tls), or consolemail://
vars().update(env.email_url("EMAIL_URL", default="consolemail://"))
DEFAULT_FROM_EMAIL: str = env.str("DEFAULT_FROM_EMAIL", default="opsite@localhost")

# a scheduled slot this long past with no run is recorded as missed
OPSITE_TASK_MISSED_GRACE_S: int = env.int("OPSITE_TASK_MISSED_GRACE_S", default=90)
# alerts: evaluation, notification retries and the per-channel circuit breaker
OPSITE_ALERT_MAX_ATTEMPTS: int = env.int("OPSITE_ALERT_MAX_ATTEMPTS", default=6)
OPSITE_ALERT_RETRY_BASE_S: float = env.float("OPSITE_ALERT_RETRY_BASE_S", default=10.0)
OPSITE_ALERT_CIRCUIT_FAILURES: int = env.int("OPSITE_ALERT_CIRCUIT_FAILURES", default=3)
OPSITE_ALERT_CIRCUIT_RESET_S: float = env.float("OPSITE_ALERT_CIRCUIT_RESET_S", default=120.0)
OPSITE_ALERT_SEND_TIMEOUT_S: float = env.float("OPSITE_ALERT_SEND_TIMEOUT_S", default=5.0)
OPSITE_ALERT_WATCHDOG_S: float = env.float("OPSITE_ALERT_WATCHDOG_S", default=5.0)
OPSITE_ALERT_EVALUATOR_MAX_AGE_S: float = env.float("OPSITE_ALERT_EVALUATOR_MAX_AGE_S", default=30.0)
OPSITE_ALERT_EMAILS: list[str] = env.list("OPSITE_ALERT_EMAILS", default=[])
# the ops dashboard's live frames over ws/ops/ come at most this often
OPSITE_OPS_MAX_SOCKETS_PER_USER: int = env.int("OPSITE_OPS_MAX_SOCKETS_PER_USER", default=5)  # per process
OPSITE_DASHBOARD_PUSH_S: float = env.float("OPSITE_DASHBOARD_PUSH_S", default=5.0)
# /metrics reads the merged stores at most this often, so scrapes stay cheap.
OPSITE_METRICS_CACHE_S: float = env.float("OPSITE_METRICS_CACHE_S", default=5.0)
OPSITE_SLOW_REQUEST_MS: float = env.float("OPSITE_SLOW_REQUEST_MS", default=1000.0)
OPSITE_SLOW_REQUEST_KEEP_DAYS: int = env.int("OPSITE_SLOW_REQUEST_KEEP_DAYS", default=7)
# Counts from the request and socket paths reach the exposition this often (batched).
OPSITE_SERIES_APPLY_S: float = env.float("OPSITE_SERIES_APPLY_S", default=1.0)
# Each process shares its exemplars and GC figures with the host's others this often.
OPSITE_EXEMPLAR_WRITE_S: float = env.float("OPSITE_EXEMPLAR_WRITE_S", default=2.0)
# Every SQL statement of a request or task ends with its traceparent (sqlcommenter style).
OPSITE_SQL_COMMENTS: bool = env.bool("OPSITE_SQL_COMMENTS", default=True)
OPSITE_SLOW_QUERY_MS: float = env.float("OPSITE_SLOW_QUERY_MS", default=200.0)
OPSITE_QUERY_SAMPLE_RATE: float = env.float("OPSITE_QUERY_SAMPLE_RATE", default=1.0)
OPSITE_N_PLUS_ONE_THRESHOLD: int = env.int("OPSITE_N_PLUS_ONE_THRESHOLD", default=10)
OPSITE_METRICS_ALLOWED_NETWORKS: list[str] = env.list(
    "OPSITE_METRICS_ALLOWED_NETWORKS", default=["127.0.0.1/32", "::1/128"]
)
OPSITE_FRONTEND_RATE_PER_MINUTE: int = env.int("OPSITE_FRONTEND_RATE_PER_MINUTE", default=1200)
# Its start-up query of the migration table would run in every process at import.
PROMETHEUS_EXPORT_MIGRATIONS = False

# On-demand profiling.
OPSITE_PROFILE_MAX_BYTES: int = env.int("OPSITE_PROFILE_MAX_BYTES", default=5 * 1024 * 1024)
OPSITE_PROFILE_MAX_S: float = env.float("OPSITE_PROFILE_MAX_S", default=30.0)
OPSITE_PROFILE_ARM_REFRESH_S: float = env.float("OPSITE_PROFILE_ARM_REFRESH_S", default=2.0)
OPSITE_PROFILE_KEEP: int = env.int("OPSITE_PROFILE_KEEP", default=200)
OPSITE_PROFILE_KEEP_DAYS: int = env.int("OPSITE_PROFILE_KEEP_DAYS", default=7)

LOG_LEVEL: str = env.str("LOG_LEVEL", default="INFO")
LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s trace=%(trace_id)s] %(message)s"}
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
}
