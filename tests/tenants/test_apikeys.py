from __future__ import annotations

from tenants import services
from tenants.selectors import apikey_resolve
from tests.conftest import Persona


def test_a_revoked_key_is_refused_and_other_keys_keep_working(alice: Persona) -> None:
    # given
    extra = services.apikey_create(tenant=alice.tenant, label="to revoke")
    client = alice.client()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {extra.raw}")
    assert client.get("/api/v1/sources").status_code == 200
    # when
    services.apikey_revoke(key=extra.key)
    # then
    assert client.get("/api/v1/sources").status_code == 401
    assert alice.client().get("/api/v1/sources").status_code == 200
    assert apikey_resolve(extra.raw) is None


def test_issued_keys_start_with_their_visible_prefix(alice: Persona) -> None:
    issued = services.apikey_create(tenant=alice.tenant)
    assert issued.raw.startswith(issued.key.prefix)
    assert issued.key.key_hash != issued.raw
    assert len(issued.raw) > 40
