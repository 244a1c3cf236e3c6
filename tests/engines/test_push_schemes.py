"""Push schemes verify upstreams' own webhooks as the upstreams sign them (no database).

Signatures come from the upstreams' published packages (tests/upstream_packages.py):
GitHub's @octokit/webhooks-methods, Stripe's `stripe`, the Standard Webhooks
reference library. Shopify publishes no signing package usable here: its
requests are signed with the algorithm Shopify documents (base64 HMAC-SHA256
of the raw body), written out in the test.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from engines.connectors import schemes
from engines.connectors.schemes import SignatureError, verifier
from tests.upstream_fixtures import upstream_fixture  # noqa: F401  (the `upstream` fixture)
from tests.upstream_packages import UpstreamSigner

GITHUB_SECRET = "It's a Secret to Everybody"
STRIPE_SECRET = "whsec_test_2b8c0a1f4e9d4c1e8f3a"
SHOPIFY_SECRET = "shpss_7c1e0c2a9f5b4e6d8a3b"
STANDARD_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OTHER_STANDARD_SECRET = "whsec_" + base64.b64encode(b"another secret, same length!").decode()
NOW = 1_800_000_000


def body_of(payload: object) -> str:
    return json.dumps(payload, separators=(",", ":"))


def shopify_hmac(secret: str, body: bytes) -> str:
    """Shopify's documented algorithm: base64 of HMAC-SHA256(app secret, raw body)."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def refused(scheme: str, secret: str, headers: dict[str, str], body: bytes, *, now: float = NOW, **kw: float) -> str:
    with pytest.raises(SignatureError) as caught:
        verifier(scheme, secret, **kw).verify(headers, body, now=now)
    return caught.value.detail


# GitHub --------------------------------------------------------------------


def test_github_accepts_what_octokit_signs_for_every_issues_example(upstream: UpstreamSigner) -> None:
    check = verifier(schemes.GITHUB, GITHUB_SECRET)
    examples = upstream.github_examples("issues") + upstream.github_examples("ping")
    for example in examples:
        body = body_of(example)
        headers = {"x-hub-signature-256": upstream.sign_github(GITHUB_SECRET, body)}
        check.verify(headers, body.encode(), now=NOW)  # raises if refused
    assert len(examples) == 33


def test_github_refuses_a_wrong_secret_a_tampered_body_and_a_missing_header(upstream: UpstreamSigner) -> None:
    body = body_of(upstream.github_examples("issues")[0])
    signature = upstream.sign_github(GITHUB_SECRET, body)
    tampered = body.replace('"edited"', '"deleted"', 1)
    assert tampered != body
    assert "does not match" in refused(
        schemes.GITHUB, "another secret", {"x-hub-signature-256": signature}, body.encode()
    )
    assert "does not match" in refused(
        schemes.GITHUB, GITHUB_SECRET, {"x-hub-signature-256": signature}, tampered.encode()
    )
    assert "X-Hub-Signature-256" in refused(schemes.GITHUB, GITHUB_SECRET, {}, body.encode())
    # GitHub's older SHA-1 header alone is not enough.
    sha1 = "sha1=" + hmac.new(GITHUB_SECRET.encode(), body.encode(), hashlib.sha1).hexdigest()
    assert "X-Hub-Signature-256" in refused(schemes.GITHUB, GITHUB_SECRET, {"x-hub-signature": sha1}, body.encode())
    assert "sha256=<hex>" in refused(
        schemes.GITHUB, GITHUB_SECRET, {"x-hub-signature-256": signature.removeprefix("sha256=")}, body.encode()
    )


# Stripe --------------------------------------------------------------------


STRIPE_EVENT = {
    "id": "evt_1NG8Du2eZvKYlo2CUI79vXWy",
    "object": "event",
    "api_version": "2023-10-16",
    "created": NOW,
    "type": "customer.updated",
    "data": {"object": {"id": "cus_9s6XKzkNRiz8i3", "object": "customer", "email": "jenny@example.com"}},
}


def test_stripe_accepts_what_the_stripe_package_signs(upstream: UpstreamSigner) -> None:
    body = body_of(STRIPE_EVENT)
    header = upstream.stripe_header(STRIPE_SECRET, body, NOW)
    verifier(schemes.STRIPE, STRIPE_SECRET).verify({"stripe-signature": header}, body.encode(), now=NOW + 3)


def test_stripe_takes_any_of_several_v1_signatures(upstream: UpstreamSigner) -> None:
    # given: Stripe signs with the old and the new secret while one is being rolled
    body = body_of(STRIPE_EVENT)
    old = upstream.stripe_header("whsec_old_secret", body, NOW)
    new = upstream.stripe_header(STRIPE_SECRET, body, NOW)
    header = old + "," + new.split(",", 1)[1]  # t=..,v1=<old>,v1=<new>
    assert header.count("v1=") == 2
    # then
    verifier(schemes.STRIPE, STRIPE_SECRET).verify({"stripe-signature": header}, body.encode(), now=NOW)
    assert "No v1 signature" in refused(schemes.STRIPE, "whsec_third", {"stripe-signature": header}, body.encode())


def test_stripe_refuses_a_wrong_secret_a_tampered_body_a_missing_header_and_stale_or_future_times(
    upstream: UpstreamSigner,
) -> None:
    body = body_of(STRIPE_EVENT)
    header = {"stripe-signature": upstream.stripe_header(STRIPE_SECRET, body, NOW)}
    assert "No v1 signature" in refused(schemes.STRIPE, "whsec_wrong", header, body.encode())
    assert "No v1 signature" in refused(schemes.STRIPE, STRIPE_SECRET, header, body.replace("jenny", "eve").encode())
    assert "Stripe-Signature" in refused(schemes.STRIPE, STRIPE_SECRET, {}, body.encode())
    # signed 301 s before now, and 301 s after, with the default 300 s window
    assert "old" in refused(schemes.STRIPE, STRIPE_SECRET, header, body.encode(), now=NOW + 301)
    assert "future" in refused(schemes.STRIPE, STRIPE_SECRET, header, body.encode(), now=NOW - 301)
    # the window is the source's own
    verifier(schemes.STRIPE, STRIPE_SECRET, tolerance_s=900).verify(header, body.encode(), now=NOW + 600)
    assert "old" in refused(schemes.STRIPE, STRIPE_SECRET, header, body.encode(), now=NOW + 61, tolerance_s=60)


def test_stripe_timestamp_cannot_be_moved_without_breaking_the_signature(upstream: UpstreamSigner) -> None:
    body = body_of(STRIPE_EVENT)
    signed_long_ago = upstream.stripe_header(STRIPE_SECRET, body, NOW - 3_600)
    replayed = signed_long_ago.replace(f"t={NOW - 3_600}", f"t={NOW}")
    assert "No v1 signature" in refused(schemes.STRIPE, STRIPE_SECRET, {"stripe-signature": replayed}, body.encode())


# Standard Webhooks ------------------------------------------------------------


def test_standard_webhooks_accepts_what_the_reference_library_signs(upstream: UpstreamSigner) -> None:
    body = body_of({"type": "invoice.paid", "data": {"id": "inv_1", "amount": 1200, "note": "café ☕"}})
    headers = upstream.standard_webhooks_headers(STANDARD_SECRET, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", NOW, body)
    verifier(schemes.STANDARD_WEBHOOKS, STANDARD_SECRET).verify(headers, body.encode(), now=NOW + 1)


def test_standard_webhooks_takes_one_match_among_several_signatures(upstream: UpstreamSigner) -> None:
    body = body_of({"type": "ping"})
    mine = upstream.standard_webhooks_headers(STANDARD_SECRET, "msg_1", NOW, body)
    other = upstream.standard_webhooks_headers(OTHER_STANDARD_SECRET, "msg_1", NOW, body)
    both = {**mine, "webhook-signature": f"{other['webhook-signature']} v1a,bm90IGEga2V5 {mine['webhook-signature']}"}
    verifier(schemes.STANDARD_WEBHOOKS, STANDARD_SECRET).verify(both, body.encode(), now=NOW)
    verifier(schemes.STANDARD_WEBHOOKS, OTHER_STANDARD_SECRET).verify(both, body.encode(), now=NOW)


def test_standard_webhooks_refuses_wrong_secret_tampering_missing_headers_and_stale_or_future_times(
    upstream: UpstreamSigner,
) -> None:
    body = body_of({"type": "invoice.paid", "data": {"id": "inv_1"}})
    headers = upstream.standard_webhooks_headers(STANDARD_SECRET, "msg_1", NOW, body)
    scheme = schemes.STANDARD_WEBHOOKS
    assert "No v1 signature" in refused(scheme, OTHER_STANDARD_SECRET, headers, body.encode())
    assert "No v1 signature" in refused(scheme, STANDARD_SECRET, headers, body.replace("inv_1", "inv_2").encode())
    # the id is signed too: a replay under a new id (to dodge deduplication) is refused
    assert "No v1 signature" in refused(scheme, STANDARD_SECRET, {**headers, "webhook-id": "msg_2"}, body.encode())
    for name in ("webhook-id", "webhook-timestamp", "webhook-signature"):
        without = {k: v for k, v in headers.items() if k != name}
        assert "webhook-id, webhook-timestamp and webhook-signature" in refused(scheme, STANDARD_SECRET, without, b"{}")
    assert "old" in refused(scheme, STANDARD_SECRET, headers, body.encode(), now=NOW + 301)
    assert "future" in refused(scheme, STANDARD_SECRET, headers, body.encode(), now=NOW - 301)


def test_standard_webhooks_agrees_with_the_python_reference_library_inside_its_fixed_window(
    upstream: UpstreamSigner,
) -> None:
    """The `standardwebhooks` package verifies with a fixed 300 s window; inside it, both say the same."""
    now = int(time.time())
    body = body_of({"type": "agree", "n": 1})
    good = upstream.standard_webhooks_headers(STANDARD_SECRET, "msg_ok", now, body)
    cases = {
        "good": (good, body, True),
        "tampered": (good, body + " ", False),
        "other id": ({**good, "webhook-id": "msg_other"}, body, False),
        "other secret": (upstream.standard_webhooks_headers(OTHER_STANDARD_SECRET, "msg_ok", now, body), body, False),
    }
    ours = verifier(schemes.STANDARD_WEBHOOKS, STANDARD_SECRET)
    theirs = Webhook(STANDARD_SECRET)
    for name, (headers, text, valid) in cases.items():
        try:
            theirs.verify(text.encode(), headers, json_parse=False)
            they_accept = True
        except WebhookVerificationError:
            they_accept = False
        try:
            ours.verify(headers, text.encode())
            we_accept = True
        except SignatureError:
            we_accept = False
        assert (we_accept, they_accept) == (valid, valid), name


def test_malformed_headers_are_refused_never_raised_as_other_errors() -> None:
    body = b'{"a": 1}'
    garbage = ["", " ", "v1", "v1,", "v1,!!!", "t=", "t=abc,v1=zz", "t=99999999999999999999999,v1=00", "sha256=é", "é"]
    stamped = {"webhook-id": "m", "webhook-timestamp": str(NOW)}
    signed = {"webhook-id": "m", "webhook-signature": "v1,AAAA"}
    cases = [
        (schemes.STANDARD_WEBHOOKS, STANDARD_SECRET, stamped, "webhook-signature"),
        (schemes.STANDARD_WEBHOOKS, STANDARD_SECRET, signed, "webhook-timestamp"),
        (schemes.STRIPE, STRIPE_SECRET, {}, "stripe-signature"),
        (schemes.GITHUB, GITHUB_SECRET, {}, "x-hub-signature-256"),
        (schemes.SHOPIFY, SHOPIFY_SECRET, {}, "x-shopify-hmac-sha256"),
        (schemes.BEASTFLOW, "whsec_x", {}, "x-beastflow-signature"),
    ]  # fmt: skip
    for scheme, secret, base, header in cases:
        for value in garbage:
            with pytest.raises(SignatureError):
                verifier(scheme, secret).verify({**base, header: value}, body, now=NOW)
    # a body that is not UTF-8 is just bytes to sign (the reference library would raise UnicodeDecodeError)
    with pytest.raises(SignatureError):
        verifier(schemes.STANDARD_WEBHOOKS, STANDARD_SECRET).verify(
            {"webhook-id": "m", "webhook-timestamp": str(NOW), "webhook-signature": "v1,AAAA"}, b"\xff\xfe", now=NOW
        )


# Shopify ---------------------------------------------------------------------


def test_shopify_accepts_its_documented_signature_and_refuses_the_rest() -> None:
    body = body_of({"id": 820982911946154508, "email": "jon@example.com", "updated_at": "2026-11-26T10:00:00-05:00"})
    good = {"x-shopify-hmac-sha256": shopify_hmac(SHOPIFY_SECRET, body.encode())}
    verifier(schemes.SHOPIFY, SHOPIFY_SECRET).verify(good, body.encode(), now=NOW)
    assert "does not match" in refused(schemes.SHOPIFY, "shpss_other", good, body.encode())
    assert "does not match" in refused(schemes.SHOPIFY, SHOPIFY_SECRET, good, body.replace("jon", "eve").encode())
    assert "X-Shopify-Hmac-Sha256" in refused(schemes.SHOPIFY, SHOPIFY_SECRET, {}, body.encode())
    hexed = {"x-shopify-hmac-sha256": hmac.new(SHOPIFY_SECRET.encode(), body.encode(), hashlib.sha256).hexdigest()}
    assert refused(schemes.SHOPIFY, SHOPIFY_SECRET, hexed, body.encode())


# beastflow -------------------------------------------------------------------


def test_beastflow_is_the_x_beastflow_signature_as_before() -> None:
    body = b'{"id": "e1", "type": "upsert", "key": "k", "version": 1, "data": {}}'
    signature = "sha256=" + hmac.new(b"whsec_abc", body, hashlib.sha256).hexdigest()
    verifier(schemes.BEASTFLOW, "whsec_abc").verify({"x-beastflow-signature": signature}, body)
    verifier(schemes.BEASTFLOW, "whsec_abc").verify(
        {"x-beastflow-signature": signature.upper().replace("SHA", "sha")}, body
    )
    assert refused(schemes.BEASTFLOW, "whsec_abc", {"x-beastflow-signature": signature}, body + b" ")
    assert "Send an API key" in refused(schemes.BEASTFLOW, "whsec_abc", {}, body)


def test_a_verifier_needs_a_known_scheme_and_a_usable_secret() -> None:
    with pytest.raises(ValueError, match="unknown push scheme"):
        verifier("gitlab", "token")
    with pytest.raises(ValueError, match="needs a secret"):
        verifier(schemes.GITHUB, "")
    with pytest.raises(ValueError, match="base64"):
        verifier(schemes.STANDARD_WEBHOOKS, "whsec_not base64!")
    # the spec lets a secret's base64 go without padding
    unpadded = STANDARD_SECRET.rstrip("=")
    assert verifier(schemes.STANDARD_WEBHOOKS, unpadded).key == verifier(schemes.STANDARD_WEBHOOKS, STANDARD_SECRET).key
