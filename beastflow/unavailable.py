"""A store that cannot be reached is a 503 with Retry-After, never a 500.

PostgreSQL restarting, unreachable or out of connections (psycopg's and
Django's OperationalError and InterfaceError, the pool's timeout), or Redis
or the broker unreachable in a view that needs them (enqueueing a task,
reading a breaker): the client is told to retry, and nothing was done that
it needs to know about (an atomic block rolled back with the error).

Two ways in, one answer:

- `ServiceUnavailableMiddleware.process_exception` for what a view raises;
- `response_for`, called by the 500 handler (beastflow/problems.py) for
  what a middleware raised before the view ran (resolving the tenant reads
  the database), where no process_exception sees it.

Recovery needs nothing: Django drops a connection that failed
(CONN_HEALTH_CHECKS, and the pool discards a broken one), and the next
request opens a new one.

While the database is down, a request would wait for a pool connection
that cannot be made (Django's pool: 10 s) before its 503. `database`, a
breaker shared by this process's Django views and the ingest fast path,
saves them the wait: after a failure, requests are answered 503 at once,
and one request at a time (every PROBE_EVERY_S) goes through to find out
whether the database is back; its success closes the breaker. /healthz,
/readyz and /metrics always go through.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import psycopg
import redis
import structlog
from django import db as django_db
from django.http import HttpRequest, HttpResponse
from kombu.exceptions import OperationalError as BrokerDown
from prometheus_client import Counter
from psycopg_pool import PoolTimeout

from beastflow.problems import problem_response

log = structlog.get_logger(__name__)

RETRY_AFTER_S = 5
DATABASE_DOWN = (django_db.OperationalError, django_db.InterfaceError, psycopg.OperationalError, PoolTimeout)
REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError, BrokerDown)

# While the database is down: one request goes through this often to see whether it is back.
PROBE_EVERY_S = 1.0
# A probe that never answered (stuck on a pool wait) stops blocking the next one after this.
PROBE_MAX_S = 15.0
ALWAYS_THROUGH = ("/healthz", "/readyz", "/metrics")

UNAVAILABLE = Counter(
    "beastflow_http_unavailable_total",
    "Requests answered 503 because a store could not be reached",
    ["store"],  # database | redis
)


class Breaker:
    """Closed: everything goes through. Open: one probe at a time, the rest are answered 503 at once."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self.open = False
        self._next_probe = 0.0

    def admit(self) -> bool:
        if not self.open:  # the common case: one attribute read, no lock
            return True
        with self._lock:
            now = time.monotonic()
            if now < self._next_probe:
                return False
            self._next_probe = now + PROBE_MAX_S  # this request is the probe
            return True

    def failed(self) -> None:
        with self._lock:
            if not self.open:
                log.warning("store_down", store=self.name)
            self.open = True
            self._next_probe = time.monotonic() + PROBE_EVERY_S

    def succeeded(self) -> None:
        if self.open:
            with self._lock:
                if self.open:
                    log.info("store_back", store=self.name)
                self.open = False


database = Breaker("database")


class DatabaseKnownDownError(django_db.OperationalError):
    """Raised instead of waiting: the `database` breaker is open and this request is not its probe."""


def store_down(exc: BaseException | None) -> str | None:
    """Which store `exc` says is unreachable ("database", "redis"), or None for any other error."""
    if isinstance(exc, DATABASE_DOWN):
        return "database"
    if isinstance(exc, REDIS_DOWN):
        return "redis"
    return None


def response_for(request: HttpRequest, exc: BaseException | None) -> HttpResponse | None:
    """The 503 for an unreachable store, or None when `exc` is another error."""
    store = store_down(exc)
    if store is None:
        return None
    if store == "database":
        database.failed()
    log.warning("store_unavailable", store=store, path=request.path, error=f"{type(exc).__name__}: {exc}"[:200])
    return unavailable_response(store)


def unavailable_response(store: str) -> HttpResponse:
    UNAVAILABLE.labels(store).inc()
    what = "The database" if store == "database" else "A backing service (Redis)"
    detail = f"{what} is unavailable; retry shortly."
    response = problem_response(503, detail, headers={"Retry-After": str(RETRY_AFTER_S)})
    response.store_unavailable = store  # type: ignore[attr-defined]  # read by the middleware
    return response


class ServiceUnavailableMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith(ALWAYS_THROUGH):
            return self.get_response(request)
        if not database.admit():
            return unavailable_response("database")
        response = self.get_response(request)
        if getattr(response, "store_unavailable", None) != "database":
            database.succeeded()
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        return response_for(request, exception)
