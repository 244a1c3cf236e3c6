"""Verify the callbacks BeastFlow POSTs to your endpoint (both signature schemes).

- `beastflow` (the default): `X-BeastFlow-Signature: t=<unix>,v1=<hex
  HMAC-SHA256(secret, "<t>." + raw body)>`; the secret (`cbsec_...`) is used
  as UTF-8 bytes; several `v1=` may appear (one match suffices).
- `standard-webhooks`: `webhook-id`, `webhook-timestamp`, `webhook-signature:
  v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>." + raw body)>` (a
  space-separated list), the key being the base64-decoded part of the
  secret after `whsec_`.

Both refuse a timestamp more than `tolerance_s` (300 s) from the receiver's
clock, in either direction. Verify the raw body as received, before parsing
it; compare in constant time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Literal, cast

from beastflow_sdk.errors import WebhookVerificationError
from beastflow_sdk.models import CallbackPayload

Scheme = Literal["beastflow", "standard-webhooks"]
DEFAULT_TOLERANCE_S = 300
SIGNATURE_HEADER = "x-beastflow-signature"
SUBSCRIPTION_HEADER = "x-beastflow-subscription"
WHSEC_PREFIX = "whsec_"


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


def _fresh(timestamp: int, *, now: float | None, tolerance_s: float) -> None:
    moment = time.time() if now is None else now
    if abs(moment - timestamp) > tolerance_s:
        raise WebhookVerificationError(f"timestamp {timestamp} is more than {tolerance_s:g} s from now")


def beastflow_signature(secret: str, body: bytes, *, timestamp: int) -> str:
    """The `X-BeastFlow-Signature` value for `body` (for tests of your receiver)."""
    digest = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify_beastflow(
    secret: str, header: str | None, body: bytes, *, tolerance_s: float = DEFAULT_TOLERANCE_S, now: float | None = None
) -> None:
    """Raise WebhookVerificationError unless `header` is a fresh, matching `X-BeastFlow-Signature`."""
    if not header:
        raise WebhookVerificationError("no X-BeastFlow-Signature header")
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isdigit():
            timestamp = int(value)
        elif name == "v1" and value:
            candidates.append(value)
    if timestamp is None or not candidates:
        raise WebhookVerificationError("malformed X-BeastFlow-Signature (want t=<unix>,v1=<hex>)")
    _fresh(timestamp, now=now, tolerance_s=tolerance_s)
    expected = beastflow_signature(secret, body, timestamp=timestamp).rsplit("=", 1)[1]
    if not any(hmac.compare_digest(expected.encode(), candidate.encode()) for candidate in candidates):
        raise WebhookVerificationError("no signature matches")


def _whsec_key(secret: str) -> bytes:
    encoded = secret.removeprefix(WHSEC_PREFIX)
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise WebhookVerificationError("the secret is not whsec_ + base64")


def standard_webhooks_signature(secret: str, body: bytes, *, message_id: str, timestamp: int) -> str:
    """The `webhook-signature` value (`v1,<base64>`) for `body` (for tests of your receiver)."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(_whsec_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify_standard_webhooks(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> None:
    """Raise WebhookVerificationError unless the Standard Webhooks headers sign `body` with `secret`."""
    found = _lower(headers)
    message_id, stamp, signatures = (
        found.get(name) for name in ("webhook-id", "webhook-timestamp", "webhook-signature")
    )
    if not message_id or not stamp or not signatures:
        raise WebhookVerificationError("missing webhook-id, webhook-timestamp or webhook-signature")
    if not stamp.strip().isdigit():
        raise WebhookVerificationError("webhook-timestamp is not unix seconds")
    timestamp = int(stamp)
    _fresh(timestamp, now=now, tolerance_s=tolerance_s)
    expected = standard_webhooks_signature(secret, body, message_id=message_id, timestamp=timestamp).split(",", 1)[1]
    for entry in signatures.split():
        version, _, signature = entry.partition(",")
        if version == "v1" and hmac.compare_digest(expected.encode(), signature.encode()):
            return
    raise WebhookVerificationError("no signature matches")


def detect_scheme(headers: Mapping[str, str]) -> Scheme:
    """Which scheme signed a request, from its headers."""
    found = _lower(headers)
    if "webhook-signature" in found:
        return "standard-webhooks"
    if SIGNATURE_HEADER in found:
        return "beastflow"
    raise WebhookVerificationError("no X-BeastFlow-Signature nor webhook-signature header")


def verify_callback(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    scheme: Scheme | None = None,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> CallbackPayload:
    """Verify one callback request and return its payload, `{"changes": [...]}`.

    `scheme`: the subscription's (`"beastflow"` or `"standard-webhooks"`);
    None reads it from the headers. Pin it when you know it, so a request
    cannot pick the scheme. Raises WebhookVerificationError.
    """
    chosen = scheme or detect_scheme(headers)
    if chosen == "standard-webhooks":
        verify_standard_webhooks(secret, headers, body, tolerance_s=tolerance_s, now=now)
    elif chosen == "beastflow":
        verify_beastflow(secret, _lower(headers).get(SIGNATURE_HEADER), body, tolerance_s=tolerance_s, now=now)
    else:
        raise WebhookVerificationError(f"unknown scheme {chosen!r}")
    try:
        payload = json.loads(body)
    except ValueError:
        raise WebhookVerificationError("the body is not JSON")
    if not isinstance(payload, dict) or not isinstance(payload.get("changes"), list):
        raise WebhookVerificationError('the body is not {"changes": [...]}')
    return cast(CallbackPayload, payload)
