"""The 503 for an unreachable store, and the database breaker's states (no server needed)."""

from __future__ import annotations

import time

import psycopg
import redis
from django import db as django_db
from django.test import RequestFactory
from kombu.exceptions import OperationalError as BrokerDown

from beastflow import unavailable
from beastflow.unavailable import Breaker, response_for


def test_database_and_redis_errors_are_a_503_problem_with_retry_after() -> None:
    request = RequestFactory().get("/api/v1/sources")
    for error in (
        django_db.OperationalError("server closed the connection unexpectedly"),
        django_db.InterfaceError("connection already closed"),
        psycopg.OperationalError("connection refused"),
        redis.ConnectionError("Error 111 connecting"),
        BrokerDown("broker unreachable"),
    ):
        response = response_for(request, error)
        assert response is not None, error
        assert response.status_code == 503
        assert response["Content-Type"] == "application/problem+json"
        assert response["Retry-After"] == str(unavailable.RETRY_AFTER_S)
    unavailable.database.succeeded()  # the database errors above opened it


def test_any_other_error_is_left_to_the_500_handler() -> None:
    request = RequestFactory().get("/api/v1/sources")
    assert response_for(request, ValueError("a bug")) is None
    assert response_for(request, django_db.IntegrityError("duplicate key")) is None
    assert response_for(request, None) is None


def test_a_closed_breaker_admits_everything() -> None:
    breaker = Breaker("test")
    assert all(breaker.admit() for _ in range(100))


def test_an_open_breaker_admits_one_probe_a_second_and_closes_on_its_success() -> None:
    # given: a failure
    breaker = Breaker("test")
    breaker.failed()
    # then: nobody for a second
    assert not breaker.admit()
    # when the second passed: one probe, and only one
    breaker._next_probe = time.monotonic() - 0.01
    assert breaker.admit()
    assert not breaker.admit()
    # when the probe fails: another second before the next
    breaker.failed()
    assert not breaker.admit()
    # when a probe succeeds: closed
    breaker._next_probe = time.monotonic() - 0.01
    assert breaker.admit()
    breaker.succeeded()
    assert breaker.admit() and breaker.admit()
