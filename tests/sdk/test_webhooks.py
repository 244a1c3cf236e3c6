"""Callback verification in the SDK against the service's own signatures (callbacks/signing.py) and real deliveries."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from beastflow_sdk import (
    Client,
    WebhookVerificationError,
    upsert,
    verify_beastflow,
    verify_callback,
    verify_standard_webhooks,
)

from callbacks import signing
from tests.sdk.conftest import SdkTenant, source_body

BODY = json.dumps({"changes": [{"seq": 1, "key": "order-1"}]}).encode()
NOW = 1_800_000_000
CB_SECRET = "cbsec_" + "s" * 32


def test_it_verifies_the_services_beastflow_signature() -> None:
    headers = signing.signed_headers("beastflow", CB_SECRET, BODY, timestamp=NOW, message_id="msg_1")
    assert verify_callback(CB_SECRET, headers, BODY, now=NOW + 10) == {"changes": [{"seq": 1, "key": "order-1"}]}
    verify_beastflow(CB_SECRET, headers[signing.SIGNATURE_HEADER], BODY, now=NOW)


def test_it_verifies_the_services_standard_webhooks_signature() -> None:
    secret = signing.new_standard_webhooks_secret()
    headers = signing.signed_headers("standard-webhooks", secret, BODY, timestamp=NOW, message_id="msg_7_0_1_1")
    assert verify_callback(secret, headers, BODY, now=NOW - 10)["changes"][0]["key"] == "order-1"
    verify_standard_webhooks(secret, {k.upper(): v for k, v in headers.items()}, BODY, now=NOW)


@pytest.mark.parametrize("scheme", ["beastflow", "standard-webhooks"])
def test_it_refuses_a_tampered_body_a_wrong_secret_and_a_stale_timestamp(scheme: str) -> None:
    secret = CB_SECRET if scheme == "beastflow" else signing.new_standard_webhooks_secret()
    other = "cbsec_other" if scheme == "beastflow" else signing.new_standard_webhooks_secret()
    headers = signing.signed_headers(scheme, secret, BODY, timestamp=NOW, message_id="msg_1")
    with pytest.raises(WebhookVerificationError):
        verify_callback(secret, headers, BODY.replace(b"order-1", b"order-2"), now=NOW)
    with pytest.raises(WebhookVerificationError):
        verify_callback(other, headers, BODY, now=NOW)
    with pytest.raises(WebhookVerificationError, match="timestamp"):
        verify_callback(secret, headers, BODY, now=NOW + signing.DEFAULT_TOLERANCE_S + 1)
    with pytest.raises(WebhookVerificationError):  # the scheme pinned: the other scheme's headers do not pass
        verify_callback(
            secret, headers, BODY, now=NOW, scheme="beastflow" if scheme != "beastflow" else "standard-webhooks"
        )


def test_a_rotated_secret_passes_with_either_signature_in_the_list() -> None:
    old = signing.signature_header("cbsec_old", BODY, timestamp=NOW)
    new = signing.signature_header(CB_SECRET, BODY, timestamp=NOW)
    both = f"{old},v1={new.rsplit('v1=', 1)[1]}"
    verify_beastflow(CB_SECRET, both, BODY, now=NOW)
    verify_beastflow("cbsec_old", both, BODY, now=NOW)


class _Receiver(BaseHTTPRequestHandler):
    got: list[tuple[dict[str, str], bytes]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).got.append((dict(self.headers.items()), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    handler = type("Receiver", (_Receiver,), {"got": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", handler.got
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.e2e
@pytest.mark.usefixtures("celery_beat")
@pytest.mark.parametrize("scheme", ["beastflow", "standard-webhooks"])
def test_real_deliveries_verify_with_the_sdk(
    scheme: str, bf: Client, sdk_tenant: SdkTenant, receiver: tuple[str, list[tuple[dict[str, str], bytes]]]
) -> None:
    url, got = receiver
    source_id = bf.sources.create(source_body())["id"]
    subscription = bf.subscriptions.create(url, sources=[source_id], signature=scheme)
    bf.push_batch(source_id, [upsert(f"k{i}", 1, {"i": i}) for i in range(3)])
    deadline = time.monotonic() + 60
    while sum(len(json.loads(body)["changes"]) for _, body in got) < 3:
        assert time.monotonic() < deadline, f"deliveries: {bf.subscriptions.deliveries(subscription['id'])}"
        time.sleep(0.1)
    keys = []
    for headers, body in got:
        payload = verify_callback(subscription["secret"], headers, body, scheme=scheme)  # type: ignore[arg-type]
        keys += [change["key"] for change in payload["changes"]]
        with pytest.raises(WebhookVerificationError):
            verify_callback(subscription["secret"], headers, body + b" ")
    assert keys == ["k0", "k1", "k2"]
