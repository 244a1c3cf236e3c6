"""Signatures of outbound callbacks (docs/contract.md §5).

`X-BeastFlow-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>`.
The timestamp is signed with the body so that a captured request cannot be
replayed later: receivers reject a `t` too far from their clock.

A subscription may choose Standard Webhooks instead (`signature:
"standard-webhooks"`, see docs/callbacks.md), which receivers verify with
that standard's library in their language.
"""

from __future__ import annotations

import base64
import secrets
from datetime import UTC, datetime
from enum import StrEnum

from standardwebhooks import Webhook

from beastflow.crypto import hmac_sha256_hex, signatures_match


class Scheme(StrEnum):
    BEASTFLOW = "beastflow"  # the default: X-BeastFlow-Signature
    STANDARD_WEBHOOKS = "standard-webhooks"


SIGNATURE_HEADER = "X-BeastFlow-Signature"
SUBSCRIPTION_HEADER = "X-BeastFlow-Subscription"
DEFAULT_TOLERANCE_S = 300


def signed_payload(timestamp: int, body: bytes) -> bytes:
    return f"{timestamp}.".encode() + body


def signature_header(secret: str, body: bytes, *, timestamp: int) -> str:
    return f"t={timestamp},v1={hmac_sha256_hex(secret, signed_payload(timestamp, body))}"


def verify_signature(
    secret: str, header: str, body: bytes, *, now: float, tolerance_s: float = DEFAULT_TOLERANCE_S
) -> bool:
    """What a receiver does: a fresh timestamp and a matching v1 signature.

    Several `v1=` entries may appear (a secret being rotated): one match is enough.
    """
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isdigit():
            timestamp = int(value)
        elif name == "v1" and value:
            candidates.append(value)
    if timestamp is None or not candidates or abs(now - timestamp) > tolerance_s:
        return False
    expected = hmac_sha256_hex(secret, signed_payload(timestamp, body))
    return any(signatures_match(expected, candidate) for candidate in candidates)


# Standard Webhooks (standardwebhooks.com), for receivers that verify with its library.
STANDARD_WEBHOOKS_SECRET_PREFIX = "whsec_"  # noqa: S105  (the format's label, not a secret)


def new_standard_webhooks_secret() -> str:
    """`whsec_` + base64 of 32 random bytes: the key the Standard Webhooks libraries decode."""
    return STANDARD_WEBHOOKS_SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def standard_webhooks_headers(secret: str, body: bytes, *, message_id: str, timestamp: int) -> dict[str, str]:
    """`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256>`, signed by the
    reference library (it signs "<id>.<timestamp>.<body>" with the base64-decoded secret)."""
    moment = datetime.fromtimestamp(timestamp, tz=UTC)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": Webhook(secret).sign(message_id, moment, body.decode("utf-8")),
    }


def delivery_message_id(subscription_id: int, epoch: int, first_seq: int, last_seq: int) -> str:
    """The id of one batch, the same on every retry of it, so a receiver can drop a repeat.

    A replay (which bumps the epoch) is a new message: whoever asked for it
    wants the changes again, not dropped as duplicates.
    """
    return f"msg_{subscription_id}_{epoch}_{first_seq}_{last_seq}"


def signed_headers(scheme: str, secret: str, body: bytes, *, timestamp: int, message_id: str) -> dict[str, str]:
    """The signature headers of one delivery, by the subscription's scheme."""
    if scheme == Scheme.STANDARD_WEBHOOKS:
        return standard_webhooks_headers(secret, body, message_id=message_id, timestamp=timestamp)
    return {SIGNATURE_HEADER: signature_header(secret, body, timestamp=timestamp)}
