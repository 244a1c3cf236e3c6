"""/metrics behind BEASTFLOW_METRICS_TOKEN: a bearer token, compared in constant time."""

from __future__ import annotations

import pytest
from django.test import Client

from beastflow.metrics import scrape_allowed

TOKEN = "s3cret-metrics-token"


@pytest.fixture
def metrics_token(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("BEASTFLOW_METRICS_TOKEN", TOKEN)
    return TOKEN


def test_metrics_without_the_token_are_refused_with_401(db: None, metrics_token: str) -> None:
    response = Client().get("/metrics")
    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"
    assert response["WWW-Authenticate"] == "Bearer"
    assert b"django_http" not in response.content


def test_metrics_with_a_wrong_token_or_scheme_are_refused(db: None, metrics_token: str) -> None:
    for header in (f"Bearer {TOKEN}x", f"Basic {TOKEN}", TOKEN, "Bearer "):
        assert Client().get("/metrics", HTTP_AUTHORIZATION=header).status_code == 401, header


def test_metrics_with_the_token_are_served(db: None, metrics_token: str) -> None:
    response = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    assert b"django_http_requests" in response.content


def test_metrics_are_open_when_no_token_is_configured(db: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BEASTFLOW_METRICS_TOKEN", raising=False)
    assert Client().get("/metrics").status_code == 200


def test_the_scheme_is_case_insensitive_and_the_token_is_not() -> None:
    assert scrape_allowed(f"bearer {TOKEN}", TOKEN)
    assert not scrape_allowed(f"Bearer {TOKEN.upper()}", TOKEN)
    assert not scrape_allowed(None, TOKEN)
    assert scrape_allowed(None, "")
