from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tenants.models import ApiKey, Tenant, hash_api_key
from tenants.selectors import apikey_resolve
from tests.conftest import subprocess_env

ROOT = Path(__file__).resolve().parents[2]


def manage(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def committed(personas: object, django_db_blocker: pytest.FixtureRequest) -> object:
    """ORM access outside a test transaction: the CLI commits in another process."""
    with django_db_blocker.unblock():  # type: ignore[attr-defined]
        yield


def test_tenant_create_prints_one_json_object_and_the_key_works(committed: None) -> None:
    # when
    created = manage("tenant", "create", "initech", "--name", "Initech", "--json")
    try:
        # then
        assert created.returncode == 0, created.stderr
        body = json.loads(created.stdout)
        assert set(body) == {"slug", "schema", "domain", "api_key"}
        assert body["slug"] == "initech"
        assert body["schema"] == "t_initech"
        assert body["domain"] == "initech.localhost"
        resolved = apikey_resolve(body["api_key"])
        assert resolved is not None and resolved.tenant.slug == "initech"
        assert Tenant.objects.get(slug="initech").ready

        # and a second key leaves the first valid
        second = manage("tenant", "apikey", "initech", "--label", "ci", "--json")
        assert second.returncode == 0, second.stderr
        key_body = json.loads(second.stdout)
        assert key_body["slug"] == "initech"
        assert key_body["api_key"] != body["api_key"]
        assert apikey_resolve(key_body["api_key"]) is not None
        assert apikey_resolve(body["api_key"]) is not None
    finally:
        manage("tenant", "delete", "initech", "--yes")


def test_keys_are_stored_only_as_hashes(committed: None, personas: dict[str, object]) -> None:
    # given
    alice = personas["alice"]
    # then
    stored = list(ApiKey.objects.filter(tenant__slug="acme").values_list("key_hash", "prefix"))
    assert (hash_api_key(alice.api_key), alice.api_key[:11]) in stored  # type: ignore[attr-defined]
    assert all(alice.api_key not in value for row in stored for value in row)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("tenant", "create", "acme", "--json"), "taken"),
        (("tenant", "create", "Bad Slug!", "--json"), "bad slug"),
        (("tenant", "create", "public", "--json"), "reserved"),
        (("tenant", "apikey", "nobody", "--json"), "no tenant"),
    ],
)
def test_cli_refuses_bad_requests_with_one_line_and_nonzero_status(
    committed: None, args: tuple[str, ...], message: str
) -> None:
    # when
    result = manage(*args)
    # then
    assert result.returncode != 0
    assert message in result.stderr
    assert result.stdout.strip() == ""
