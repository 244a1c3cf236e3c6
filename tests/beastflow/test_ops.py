"""Operational surface: liveness, readiness, metrics, errors, correlation ids."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.test import Client

from beastflow import health
from beastflow.health import ComponentHealth, FunctionComponent
from tests.conftest import Persona


def test_healthz_answers_on_any_host(db: None) -> None:
    response = Client(HTTP_HOST="10.1.2.3").get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_reports_every_platform_component(db: None) -> None:
    response = Client().get("/readyz")
    body = response.json()
    assert response.status_code == 200, body
    assert {"database", "redis", "broker", "migrations"} <= set(body["components"])
    assert all(body["components"][name]["ok"] for name in ("database", "redis", "broker", "migrations"))


@pytest.fixture
def broken_component() -> Iterator[None]:
    def probe() -> ComponentHealth:
        raise ConnectionError("nothing answers on 127.0.0.1:1")

    health.register(FunctionComponent(name="zz-broken", probe=probe))
    yield
    health._registry.pop("zz-broken")


def test_readyz_is_503_and_names_the_failing_part(db: None, broken_component: None) -> None:
    response = Client().get("/readyz")
    body = response.json()
    assert response.status_code == 503
    assert response["Content-Type"] == "application/problem+json"
    assert body["failing"] == ["zz-broken"]
    assert "zz-broken" in body["detail"]
    assert "ConnectionError" in body["components"]["zz-broken"]["error"]


def test_metrics_are_served_without_a_tenant_host(alice: Persona) -> None:
    alice.client().get("/api/v1/sources")
    response = Client(HTTP_HOST="127.0.0.1").get("/metrics")
    assert response.status_code == 200
    assert b"django_http_requests_total_by_method_total" in response.content


def test_a_request_id_is_echoed_or_generated(alice: Persona) -> None:
    given = alice.client().get("/api/v1/sources", HTTP_X_REQUEST_ID="req-123.abc")
    generated = alice.client().get("/api/v1/sources")
    hostile = alice.client().get("/api/v1/sources", HTTP_X_REQUEST_ID="bad id\nwith newline")
    assert given["X-Request-ID"] == "req-123.abc"
    assert len(generated["X-Request-ID"]) == 32
    assert hostile["X-Request-ID"] != "bad id\nwith newline"


def test_malformed_json_is_a_400_problem_and_stores_nothing(alice: Persona) -> None:
    client = alice.client()
    response = client.post("/api/v1/sources", data=b'{"name": ', content_type="application/json")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert set(response.json()) >= {"type", "title", "status", "detail", "errors"}
    assert client.get("/api/v1/sources").json()["results"] == []


def test_an_unknown_api_path_is_a_404_problem(alice: Persona) -> None:
    response = alice.client().get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"


def test_the_openapi_schema_describes_the_sources_api(db: None) -> None:
    response = Client().get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    assert "/api/v1/sources" in response.json()["paths"]
