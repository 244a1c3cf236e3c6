"""BeastFlow settings: everything comes from the environment (docs/contract.md §1)."""

from __future__ import annotations

import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from beastflow.env import env_bool, env_float, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
STATE_DIR = Path(env_str("BEASTFLOW_STATE_DIR", str(BASE_DIR / ".beastflow")))


def _secret_key() -> str:
    """The key from the environment, else one generated once per checkout.

    A fresh clone must run without configuration, and sessions and signed
    values must survive restarts, so the generated key is kept on disk
    under .beastflow/ (ignored by git), never in the repository.
    """
    configured = env_str("DJANGO_SECRET_KEY")
    if configured:
        return configured
    if env_bool("BEASTFLOW_REQUIRE_SECRET_KEY", False):
        # The production image sets this: replicas each generating a key of
        # their own would not read each other's sessions and signatures.
        raise ImproperlyConfigured("DJANGO_SECRET_KEY is required (BEASTFLOW_REQUIRE_SECRET_KEY=1)")
    path = STATE_DIR / "secret_key"
    if path.exists():
        return path.read_text().strip()
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(50)
    path.write_text(key)
    path.chmod(0o600)
    return key


SECRET_KEY = _secret_key()
DEBUG = env_bool("BEASTFLOW_DEBUG", False)
ALLOWED_HOSTS = env_list("BEASTFLOW_ALLOWED_HOSTS", ["*"])
CSRF_TRUSTED_ORIGINS = env_list("BEASTFLOW_CSRF_TRUSTED_ORIGINS", [])
BEASTFLOW_PORT = env_int("BEASTFLOW_PORT", 8000)
# Tenant console hosts are "<slug>.<BEASTFLOW_BASE_DOMAIN>"; *.localhost
# resolves to loopback in browsers, so the demo console works out of the box.
BEASTFLOW_BASE_DOMAIN = env_str("BEASTFLOW_BASE_DOMAIN", "localhost")

SHARED_APPS = [
    "django_tenants",
    "beastflow",
    "tenants",
    "scheduling",
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.admin",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "django_prometheus",
    "channels",
]
TENANT_APPS = [
    "engines",
    "callbacks",
    "healing",
    "console",
    "retention",  # no models: partitions and retention across the tenant apps' tables
    "observability",  # no models: scrape-time gauges, diagnostics (docs/observability.md)
    "strategies",  # versioned strategy parameters, A/B experiments, tuning (docs/strategies.md)
]
INSTALLED_APPS = SHARED_APPS + [app for app in TENANT_APPS if app not in SHARED_APPS]

TENANT_MODEL = "tenants.Tenant"
TENANT_DOMAIN_MODEL = "tenants.Domain"
TENANT_LIMIT_SET_CALLS = True
PUBLIC_SCHEMA_NAME = "public"
# `manage.py migrate_tenants` migrates the tenants with pending migrations in
# this many processes (django-tenants' multiprocessing executor).
TENANT_MULTIPROCESSING_MAX_PROCESSES = env_int("BEASTFLOW_MIGRATE_PROCESSES", 2)
# Tenant schemas cloned ahead of need, so that creating a tenant renames one
# (tenants/schema_spares.py); 0: each new tenant's schema is cloned as it is created.
BEASTFLOW_TENANT_SPARES = env_int("BEASTFLOW_TENANT_SPARES", 3)

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "beastflow.correlation.CorrelationIdMiddleware",
    # PostgreSQL or Redis unreachable: 503 + Retry-After, never 500; before the tenant's
    # lookup, so that a database known to be down is not waited for (docs/reliability.md).
    "beastflow.unavailable.ServiceUnavailableMiddleware",
    "tenants.middleware.TenantResolutionMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "beastflow.urls"
PUBLIC_SCHEMA_URLCONF = "beastflow.urls"
ASGI_APPLICATION = "beastflow.asgi.application"
WSGI_APPLICATION = "beastflow.wsgi.application"

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

DATABASE_URL = env_str("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/beastflow")
_db = dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("BEASTFLOW_DB_CONN_MAX_AGE", 60))
_db["ENGINE"] = "django_tenants.postgresql_backend"
_db["CONN_HEALTH_CHECKS"] = True
_db.setdefault("TEST", {})["NAME"] = env_str("BEASTFLOW_TEST_DB_NAME", f"test_{_db['NAME']}")
# Under ASGI, Django runs each request's sync code in a thread of its own, so
# persistent connections (CONN_MAX_AGE > 0) pile up, one per thread, until
# PostgreSQL refuses clients (the bench exhausted its 100). A process that
# sets BEASTFLOW_DB_POOL_SIZE (the web process: beastflow/asgi.py does)
# hands its connections back to psycopg's pool after each request instead.
# Celery's workers keep persistent connections (CELERY_DB_REUSE_MAX below): a pool does not survive their fork.
DB_POOL_SIZE = env_int("BEASTFLOW_DB_POOL_SIZE", 0)
if DB_POOL_SIZE > 0:
    _db["CONN_MAX_AGE"] = 0
    _db.setdefault("OPTIONS", {})["pool"] = {"min_size": 2, "max_size": DB_POOL_SIZE, "timeout": 10}
DATABASES = {"default": _db}
ORIGINAL_BACKEND = "django_prometheus.db.backends.postgresql"
DATABASE_ROUTERS = ("django_tenants.routers.TenantSyncRouter",)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")
# Every Redis key BeastFlow writes starts with this, so one Redis can serve
# several deployments (and a test run beside a running service).
REDIS_PREFIX = env_str("BEASTFLOW_REDIS_PREFIX", "bf")

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": f"{REDIS_PREFIX}:cache",
    }
}

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        # A socket timeout above the layer's own 5 s blocking receive, so a
        # quiet connection is never cut mid-wait.
        "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 15}], "prefix": f"{REDIS_PREFIX}:asgi"},
    }
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]

# The console's sign-in page (the admin keeps its own at /admin/login/).
LOGIN_URL = "console:login"
LOGIN_REDIRECT_URL = "console:home"

# Request body limit; ingest checks its own, larger limit (docs/contract.md §2: 413).
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("BEASTFLOW_MAX_BODY_BYTES", 5 * 1024 * 1024)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["tenants.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["tenants.authentication.HasTenantKey"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "beastflow.problems.drf_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "BeastFlow API",
    "DESCRIPTION": "Reliable data flow from unreliable upstreams. How to use it: docs/api.md in the repository.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    # 3.1: nullable fields are JSON Schema's `type: [..., "null"]`, as the pydantic-drawn components write them.
    "OAS_VERSION": "3.1.0",
    # Shared answers and components (beastflow/openapi.py), then the ingest operation served outside DRF
    # (engines/ingest/openapi.py); docs/api.md.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "beastflow.openapi.shared_answers_hook",
        "engines.ingest.openapi.ingest_operation_hook",
    ],
    # One name for a choice set that several bodies use.
    "ENUM_NAME_OVERRIDES": {
        "ModeEnum": ["event", "hybrid", "polling"],
        "SubscriptionStatusEnum": ["active", "disabled"],
    },
}

# Celery: Redis broker; the tenant travels in a task header
# (tenant-schemas-celery). Tasks acknowledge after they ran, so a worker
# that dies mid-task leaves the task to another one.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL)
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env_int("BEASTFLOW_TASK_SOFT_TIME_LIMIT", 120)
CELERY_TASK_TIME_LIMIT = env_int("BEASTFLOW_TASK_TIME_LIMIT", 150)
CELERY_TASK_ALWAYS_EAGER = env_bool("BEASTFLOW_CELERY_EAGER", False)
CELERY_TASK_TENANT_CACHE_SECONDS = 30
# Celery's Django fixup closes the database connection before and after every
# task unless this is set: a new PostgreSQL backend per task, whose catalog
# caches start cold for every schema it touches (at 1,000 tenants: ~25 new
# connections a second, and a monitor pass re-reading the catalog of ~200
# schemas each time). With it set high the fixup leaves them open and
# beastflow.celery closes them as Django does per request: past
# CONN_MAX_AGE, after an error that left them unusable.
CELERY_DB_REUSE_MAX = 1_000_000_000
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "global_keyprefix": f"{REDIS_PREFIX}:celery:",
    # Longer than the hard time limit, so a running late-acked task is not
    # redelivered to a second worker while the first still works on it.
    "visibility_timeout": 3600,
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# The clock and the queues (docs/scheduling.md). Beat only starts claimers
# and dispatchers, under a leader lock, so running two beats is safe; the
# work itself is found by deadline in the public schema, across tenants.
BEASTFLOW_TENANT_FANOUT_STAGGER_S = env_float("BEASTFLOW_TENANT_FANOUT_STAGGER_S", 0.05)
# The monitor's tick (s): a source whose stream is moving (a bad verdict, a
# penalty, hybrid, a recovery being counted) is judged this often.
BEASTFLOW_MONITOR_TICK_S = env_float("BEASTFLOW_MONITOR_TICK_S", 1.0)
# In polling with the push still dead: how often to look for it coming back (s).
BEASTFLOW_MONITOR_DORMANT_S = env_float("BEASTFLOW_MONITOR_DORMANT_S", 5.0)
# A healthy stream that moved since its last judgement is judged again this
# often (s), for what its silence deadline cannot show: gaps, refused pushes.
BEASTFLOW_MONITOR_ACTIVE_S = env_float("BEASTFLOW_MONITOR_ACTIVE_S", 5.0)
# A healthy stream that did not move: judged at its silence deadline, or after this at most (s).
BEASTFLOW_MONITOR_IDLE_S = env_float("BEASTFLOW_MONITOR_IDLE_S", 300.0)
# Claimer tasks beat sends per tick, each judging due sources in batches
# for up to two ticks; more claimers use more monitor workers at once.
BEASTFLOW_MONITOR_CLAIMERS = env_int("BEASTFLOW_MONITOR_CLAIMERS", 1)
BEASTFLOW_MONITOR_BATCH = env_int("BEASTFLOW_MONITOR_BATCH", 200)
# A tenant with a source due has its sources due within this much later judged
# with it (s): one visit to its schema for several sources (docs/scheduling.md).
BEASTFLOW_MONITOR_COALESCE_S = env_float("BEASTFLOW_MONITOR_COALESCE_S", 2.5)
# A claimed judgement lost with its worker is due again after this (s).
BEASTFLOW_MONITOR_LEASE_S = env_float("BEASTFLOW_MONITOR_LEASE_S", 30.0)
# No monitor pass for this long (s) is BeastFlow's own outage: the silence
# inside it is not counted against the sources (engines/watch.py). 0: off.
BEASTFLOW_MONITOR_OUTAGE_S = env_float("BEASTFLOW_MONITOR_OUTAGE_S", 60.0)
BEASTFLOW_HEALTH_RETENTION_H = env_float("BEASTFLOW_HEALTH_RETENTION_H", 24.0)
# Per tenant and pass, how long deleting events past retention may take (s);
# a longer backlog is finished by the next passes (docs/scaling.md).
BEASTFLOW_RETENTION_EVENTS_BUDGET_S = env_float("BEASTFLOW_RETENTION_EVENTS_BUDGET_S", 20.0)
# Polls and reconciliations queued at most at once (backpressure): each
# dispatch round fills the queue up to this, shared between tenants by tier.
BEASTFLOW_POLLS_IN_FLIGHT = env_int("BEASTFLOW_POLLS_IN_FLIGHT", 200)
BEASTFLOW_RECONCILES_IN_FLIGHT = env_int("BEASTFLOW_RECONCILES_IN_FLIGHT", 20)
# Weights of the tiers in fair sharing ("tier:weight,..."): busy premium
# tenants get four times a busy free tenant's share of a round.
BEASTFLOW_TIER_WEIGHTS = {
    name: float(weight)
    for name, _, weight in (
        item.partition(":") for item in env_list("BEASTFLOW_TIER_WEIGHTS", ["free:1", "standard:2", "premium:4"])
    )
}
# Healing (healing/): a tenant with open failures or actions gets a pass this
# often (s); one with none, after BEASTFLOW_HEALING_IDLE_S at most (a new
# failure makes its pass due at once).
BEASTFLOW_HEALING_TICK_S = env_float("BEASTFLOW_HEALING_TICK_S", 2.0)
BEASTFLOW_HEALING_IDLE_S = env_float("BEASTFLOW_HEALING_IDLE_S", 300.0)
# Healing passes queued at most at once (backpressure, as for polls): a
# mass outage's thousand tenants wait in the schedule, most overdue first.
BEASTFLOW_HEALING_IN_FLIGHT = env_int("BEASTFLOW_HEALING_IN_FLIGHT", 100)
# Callback sweeps (deliveries a wake missed): per tenant with active
# subscriptions every BEASTFLOW_CALLBACKS_SWEEP_S, without any every
# BEASTFLOW_CALLBACKS_IDLE_SWEEP_S (a new subscription makes it due at once).
BEASTFLOW_CALLBACKS_SWEEP_S = env_float("BEASTFLOW_CALLBACKS_SWEEP_S", 10.0)
BEASTFLOW_CALLBACKS_IDLE_SWEEP_S = env_float("BEASTFLOW_CALLBACKS_IDLE_SWEEP_S", 300.0)
# Sweeps sent in a round at most as far as the callbacks queue holds fewer
# messages than this (backpressure: tenants made together do not queue a herd).
BEASTFLOW_CALLBACKS_SWEEPS_IN_FLIGHT = env_int("BEASTFLOW_CALLBACKS_SWEEPS_IN_FLIGHT", 100)
# One tenant's delivery run lasts at most this many seconds times its tier
# weight, then goes to the back of the callbacks queue: tenants take turns.
BEASTFLOW_CALLBACKS_SLICE_S = env_float("BEASTFLOW_CALLBACKS_SLICE_S", 2.0)
# Readiness (/readyz, docs/scheduling.md): while workers are alive, the
# oldest due-but-unjudged source and the oldest queued message may wait this
# long (s) before the service reports itself not ready. Generous on purpose:
# a busy machine or a restart catching up must not flap readiness.
BEASTFLOW_READY_MONITOR_LAG_S = env_float("BEASTFLOW_READY_MONITOR_LAG_S", 60.0)
BEASTFLOW_READY_QUEUE_LAG_S = env_float("BEASTFLOW_READY_QUEUE_LAG_S", 120.0)
# The clock's leader lock in Redis: held for this long, renewed every beat tick.
BEASTFLOW_LEADER_TTL_S = env_float("BEASTFLOW_LEADER_TTL_S", 10.0)
# Unanswered approval requests: seconds at each level before the next one is told.
BEASTFLOW_ESCALATION_TIMEOUTS_S = [
    float(v) for v in env_list("BEASTFLOW_ESCALATION_TIMEOUTS_S", ["900", "1800", "3600"])
]
# Who is told at each level: levels separated by ";", addresses/URLs by ",".
BEASTFLOW_ESCALATION_EMAILS = [
    [a for a in level.split(",") if a] for level in env_str("BEASTFLOW_ESCALATION_EMAILS", "").split(";")
]
BEASTFLOW_ESCALATION_WEBHOOKS = [
    [u for u in level.split(",") if u] for level in env_str("BEASTFLOW_ESCALATION_WEBHOOKS", "").split(";")
]
BEASTFLOW_ESCALATION_WEBHOOK_SECRET = env_str("BEASTFLOW_ESCALATION_WEBHOOK_SECRET", "")
EMAIL_BACKEND = env_str("BEASTFLOW_EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env_str("BEASTFLOW_FROM_EMAIL", "beastflow@localhost")

# Queues per kind of work, so a backlog of one kind never delays another
# (docs/scheduling.md). `celery` keeps the platform's own small tasks.
BEASTFLOW_QUEUES = ("celery", "monitor", "polls", "reconcile", "healing", "callbacks")
CELERY_TASK_DEFAULT_QUEUE = "celery"
# A worker started without -Q consumes every one of these.
CELERY_TASK_QUEUES = {name: {"exchange": name, "routing_key": name} for name in BEASTFLOW_QUEUES}
CELERY_TASK_ROUTES = {
    # The clock's dispatch rounds are small and must not wait behind the work
    # they hand out (a round queued behind 200 polls expired unrun): `celery`.
    # Exact names win over the patterns below.
    "engines.tasks.polls_dispatch_task": {"queue": "celery"},
    "engines.tasks.reconciles_dispatch_task": {"queue": "celery"},
    "healing.tasks.healing_dispatch_task": {"queue": "celery"},
    "callbacks.tasks.callbacks_sweep_task": {"queue": "celery"},
    "engines.tasks.monitor_*": {"queue": "monitor"},
    "engines.tasks.polls_*": {"queue": "polls"},
    "engines.tasks.source_poll_task": {"queue": "polls"},
    "engines.tasks.reconciles_*": {"queue": "reconcile"},
    "engines.tasks.source_reconcile_task": {"queue": "reconcile"},
    "healing.tasks.*": {"queue": "healing"},
    "callbacks.tasks.*": {"queue": "callbacks"},
}
CELERY_BEAT_SCHEDULER = "scheduling.beat:LeaderScheduler"


def _monitor_claimers() -> dict[str, dict[str, object]]:
    # Each tick's claimers expire when the next tick's come: the work waits
    # in the schedule table, not in the queue, so nothing is lost by it.
    return {
        f"monitor-claim-{n}": {
            "task": "engines.tasks.monitor_claim_task",
            "schedule": BEASTFLOW_MONITOR_TICK_S,
            "options": {"expires": max(2.0, 2 * BEASTFLOW_MONITOR_TICK_S)},
        }
        for n in range(max(1, BEASTFLOW_MONITOR_CLAIMERS))
    }


CELERY_BEAT_SCHEDULE: dict[str, dict[str, object]] = {
    # Proves the worker path and keeps last-seen-worker fresh for /readyz.
    "heartbeat": {"task": "beastflow.tasks.worker_heartbeat_task", "schedule": 10.0},
    # The monitor: claimers judge the sources whose deadline passed, across tenants.
    **_monitor_claimers(),
    # Due polls, every second, so a source's min_interval_s (default 1 s) is
    # kept to within a tick; each round fills the polls queue up to
    # BEASTFLOW_POLLS_IN_FLIGHT, shared fairly between tenants.
    "polls-dispatch": {"task": "engines.tasks.polls_dispatch_task", "schedule": 1.0, "options": {"expires": 5.0}},
    # Retention, per tenant (docs/scaling.md): partitions made a few spans
    # ahead; health samples, changes and events past retention removed.
    "retention": {"task": "retention.tasks.retention_all_task", "schedule": 3600.0},
    # Callback sweeps due (deliveries a wake missed: a worker restart, a lost message).
    "callbacks-sweep": {"task": "callbacks.tasks.callbacks_sweep_task", "schedule": 2.0, "options": {"expires": 10.0}},
    # Due reconciliations (each source's reconcile.interval_s, 300 s by
    # default): a 10 s round keeps a source within 10 s of its interval.
    "reconciles-dispatch": {
        "task": "engines.tasks.reconciles_dispatch_task",
        "schedule": 10.0,
        "options": {"expires": 10.0},
    },
    # Healing passes due: the failure queue in priority order (RCA, then a
    # strategy), verification of running actions, escalation timeouts,
    # recovered failures. A short round, because detection-to-healing time is measured.
    "healing-tick": {
        "task": "healing.tasks.healing_dispatch_task",
        "schedule": BEASTFLOW_HEALING_TICK_S,
        "options": {"expires": 10.0},
    },
    # Running experiments: guardrails and the sequential test (docs/strategies.md).
    "experiments": {
        "task": "strategies.tasks.experiments_dispatch_task",
        "schedule": 60.0,
        "options": {"expires": 60.0},
    },
    # Observability's periodic work (observability/tasks.py, docs/observability.md): samples for the capacity trends.
    "observability-tick": {
        "task": "observability.tasks.observability_tick_task",
        "schedule": 15.0,
        "options": {"expires": 15.0},
    },
    # The healing bandit's prior pooled over every tenant's outcomes.
    "bandit-pool": {"task": "strategies.tasks.bandit_pool_task", "schedule": 3600.0},
    # Spare tenant schemas kept ready (also refilled after each creation), and
    # those of an older migration set dropped after a deploy.
    "tenant-spares": {"task": "tenants.tasks.spares_fill_task", "schedule": 60.0, "options": {"expires": 60.0}},
}

LOG_LEVEL = env_str("BEASTFLOW_LOG_LEVEL", "INFO")
LOG_FORMAT = env_str("BEASTFLOW_LOG_FORMAT", "json")
LOGGING_CONFIG = None  # configured by beastflow.logging at startup

PROMETHEUS_EXPORT_MIGRATIONS = False
# Per-source series on /metrics (health score, mode age, silence) for at most
# this many unpaused sources, those most in need of attention first; per
# subscription backlog for at most this many subscriptions (docs/observability.md).
BEASTFLOW_METRICS_SOURCE_LIMIT = env_int("BEASTFLOW_METRICS_SOURCE_LIMIT", 200)
BEASTFLOW_METRICS_SUBSCRIPTION_LIMIT = env_int("BEASTFLOW_METRICS_SUBSCRIPTION_LIMIT", 200)

from beastflow.logging import configure_logging  # noqa: E402

configure_logging(level=LOG_LEVEL, fmt=LOG_FORMAT)
