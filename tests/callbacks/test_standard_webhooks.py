"""Callbacks signed the Standard Webhooks way, verified by that standard's own reference libraries.

A receiver on 127.0.0.1 records the real POSTs; they are then verified with
`standardwebhooks` from PyPI and with `standardwebhooks` from npm (run in
Node), exactly as a receiver in either language would.
"""

from __future__ import annotations

import base64
import json
import subprocess
from typing import Any

import pytest
from django.utils import timezone
from prometheus_client import REGISTRY
from standardwebhooks import Webhook, WebhookVerificationError

from callbacks import services
from callbacks.models import Subscription
from callbacks.policy import DeliveryPolicy
from engines.models import Source
from engines.polling_policy import BreakerPolicy
from tests.callbacks.support import Received, Receiver, Reply, call_api, insert_changes
from tests.conftest import Persona
from tests.upstream_packages import UpstreamPackagesUnavailableError, ensure_installed

POLICY = DeliveryPolicy(breaker=BreakerPolicy(failure_threshold=1000))
FULL = lambda: 1.0  # noqa: E731

# Reads [{secret, body (base64), headers}] on stdin; prints, per case, true or the library's error.
NODE_VERIFY = """
const { Webhook } = require("standardwebhooks");
let input = "";
process.stdin.on("data", (chunk) => (input += chunk));
process.stdin.on("end", () => {
  const results = JSON.parse(input).map((c) => {
    try {
      new Webhook(c.secret).verify(Buffer.from(c.body, "base64"), c.headers);
      return true;
    } catch (error) {
      return String(error.message || error);
    }
  });
  process.stdout.write(JSON.stringify(results));
});
"""


def _node_verify(cases: list[dict[str, Any]]) -> list[Any]:
    """Each case verified by the npm package's Webhook.verify, in Node."""
    try:
        folder = ensure_installed()
    except UpstreamPackagesUnavailableError as exc:
        pytest.skip(f"the npm standardwebhooks package cannot be installed: {exc}")
    done = subprocess.run(
        ["node", "-e", NODE_VERIFY],
        cwd=folder,  # where require() finds node_modules/standardwebhooks
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    results: list[Any] = json.loads(done.stdout)
    return results


def _subscribe(url: str, source: Source, signature: str = "standard-webhooks") -> tuple[Subscription, str]:
    return services.subscription_create(url=url, sources=[source.pk], from_seq=None, signature=signature)


def _deliver(subscription: Subscription) -> services.DeliveryResult:
    # The real clock: the libraries refuse a timestamp more than 5 minutes from theirs.
    return services.subscription_deliver(subscription_id=subscription.pk, policy=POLICY, rand=FULL)


def _case(secret: str, request: Received, *, body: bytes | None = None) -> dict[str, Any]:
    headers = {name: request.headers[name] for name in ("webhook-id", "webhook-timestamp", "webhook-signature")}
    return {
        "secret": secret,
        "body": base64.b64encode(request.body if body is None else body).decode(),
        "headers": headers,
    }


def test_the_secret_of_a_standard_webhooks_subscription_is_whsec_and_base64(orders: Source, receiver: Receiver) -> None:
    _, secret = _subscribe(receiver.url, orders)
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32


def _delivered(outcome: str) -> float:
    labels = {"signature": "standard-webhooks", "outcome": outcome}
    return REGISTRY.get_sample_value("beastflow_callback_deliveries_total", labels) or 0.0


def test_a_callback_verifies_with_the_python_reference_library(orders: Source, receiver: Receiver) -> None:
    # given
    subscription, secret = _subscribe(receiver.url, orders)
    changes = insert_changes(orders.pk, 3)
    counted = _delivered("ok")
    # when
    assert _deliver(subscription).batches == 1
    # then
    [request] = receiver.requests
    assert Webhook(secret).verify(request.body, request.headers) == {"changes": changes}
    assert _delivered("ok") == counted + 1
    assert "x-beastflow-signature" not in request.headers
    assert request.headers["x-beastflow-subscription"] == str(subscription.pk)
    assert abs(int(request.headers["webhook-timestamp"]) - timezone.now().timestamp()) < 60
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(request.body.replace(b'"seq"', b'"Seq"'), request.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(services.new_secret("standard-webhooks")).verify(request.body, request.headers)


def test_a_callback_verifies_with_the_node_reference_library(orders: Source, receiver: Receiver) -> None:
    # given
    subscription, secret = _subscribe(receiver.url, orders)
    insert_changes(orders.pk, 2)
    # when
    assert _deliver(subscription).batches == 1
    # then
    [request] = receiver.requests
    results = _node_verify(
        [
            _case(secret, request),
            _case(secret, request, body=request.body + b" "),
            _case(services.new_secret("standard-webhooks"), request),
        ],
    )
    assert results[0] is True
    assert results[1] is not True and "signature" in results[1].lower()
    assert results[2] is not True


def test_every_retry_of_a_batch_carries_the_same_webhook_id(orders: Source, receiver: Receiver) -> None:
    # given: the endpoint fails the first attempt
    subscription, secret = _subscribe(receiver.url, orders)
    insert_changes(orders.pk, 2)
    receiver.answer(Reply(status=500))
    failed = _delivered("http_5xx")
    # when: the attempt, then the retry once due
    _deliver(subscription)
    assert _delivered("http_5xx") == failed + 1
    Subscription.objects.filter(pk=subscription.pk).update(next_attempt_at=None)
    _deliver(subscription)
    # then
    first, second = receiver.requests
    assert first.body == second.body
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    Webhook(secret).verify(second.body, second.headers)
    # and the next batch is another message
    insert_changes(orders.pk, 1)
    _deliver(subscription)
    assert receiver.requests[2].headers["webhook-id"] != first.headers["webhook-id"]


def test_a_replayed_batch_is_a_new_message_not_a_duplicate(orders: Source, receiver: Receiver) -> None:
    # given
    subscription, _ = _subscribe(receiver.url, orders)
    changes = insert_changes(orders.pk, 2)
    _deliver(subscription)
    # when
    services.subscription_replay(subscription=subscription, from_seq=changes[0]["seq"])
    _deliver(subscription)
    # then
    first, again = receiver.requests
    assert first.body == again.body
    assert first.headers["webhook-id"] != again.headers["webhook-id"]


def test_the_default_signature_stays_beastflows(orders: Source, receiver: Receiver) -> None:
    subscription, secret = services.subscription_create(url=receiver.url, sources=[orders.pk], from_seq=None)
    insert_changes(orders.pk, 1)
    _deliver(subscription)
    [request] = receiver.requests
    assert subscription.signature == "beastflow"
    assert secret.startswith("cbsec_")
    assert "x-beastflow-signature" in request.headers
    assert "webhook-signature" not in request.headers


def test_the_api_takes_the_signature_scheme_and_shows_it(alice: Persona) -> None:
    # when
    created = call_api(
        alice, "post", "/api/v1/subscriptions", {"url": "http://127.0.0.1:9/hook", "signature": "standard-webhooks"}
    )
    # then
    assert created.status_code == 201, created.json()
    body = created.json()
    assert body["signature"] == "standard-webhooks"
    assert body["secret"].startswith("whsec_")
    fetched = call_api(alice, "get", f"/api/v1/subscriptions/{body['id']}").json()
    assert fetched["signature"] == "standard-webhooks"
    assert "secret" not in fetched
    default = call_api(alice, "post", "/api/v1/subscriptions", {"url": "http://127.0.0.1:9/hook"}).json()
    assert default["signature"] == "beastflow"


def test_an_unknown_signature_scheme_is_a_422_naming_it(alice: Persona) -> None:
    response = call_api(alice, "post", "/api/v1/subscriptions", {"url": "http://127.0.0.1:9/hook", "signature": "jwt"})
    assert response.status_code == 422
    assert [error["field"] for error in response.json()["errors"]] == ["signature"]
