"""The `beastflow` scheme's timed signature (t=<unix>,v1=<hex>) and push.require_timestamp."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

from tests.conftest import Persona
from tests.factories import source_spec


def _timed(secret: str, body: bytes, stamp: int) -> dict[str, str]:
    digest = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return {"HTTP_X_BEASTFLOW_SIGNATURE": f"t={stamp},v1={digest}"}


def _untimed(secret: str, body: bytes) -> dict[str, str]:
    return {"HTTP_X_BEASTFLOW_SIGNATURE": "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()}


def _event(n: int) -> bytes:
    return json.dumps({"id": f"r{n}", "type": "upsert", "key": "k", "version": n, "data": {}}).encode()


def test_timed_signatures_within_the_window_pass_and_replays_outside_it_do_not(alice: Persona) -> None:
    from rest_framework.test import APIClient

    created = alice.client().post("/api/v1/sources", source_spec(push={"tolerance_s": 60}), format="json").json()
    url, secret = f"/api/v1/sources/{created['id']}/events", created["webhook_secret"]
    client, now = APIClient(), int(time.time())
    ok = client.post(url, _event(1), content_type="application/json", **_timed(secret, _event(1), now))
    assert ok.status_code == 202, ok.content
    old = client.post(url, _event(2), content_type="application/json", **_timed(secret, _event(2), now - 120))
    assert old.status_code == 401 and "replay window" in old.json()["detail"]
    forged = _timed(secret, _event(3), now) | {}
    forged["HTTP_X_BEASTFLOW_SIGNATURE"] = forged["HTTP_X_BEASTFLOW_SIGNATURE"].replace(f"t={now}", f"t={now + 1}")
    assert client.post(url, _event(3), content_type="application/json", **forged).status_code == 401
    untimed = client.post(url, _event(4), content_type="application/json", **_untimed(secret, _event(4)))
    assert untimed.status_code == 202


def test_require_timestamp_refuses_the_untimed_form(alice: Persona) -> None:
    from rest_framework.test import APIClient

    spec = source_spec(push={"require_timestamp": True})
    created = alice.client().post("/api/v1/sources", spec, format="json").json()
    url, secret = f"/api/v1/sources/{created['id']}/events", created["webhook_secret"]
    client = APIClient()
    untimed = client.post(url, _event(1), content_type="application/json", **_untimed(secret, _event(1)))
    assert untimed.status_code == 401 and "t=<unix>" in untimed.json()["detail"]
    timed = client.post(url, _event(2), content_type="application/json", **_timed(secret, _event(2), int(time.time())))
    assert timed.status_code == 202
