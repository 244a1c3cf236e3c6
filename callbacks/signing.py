"""Signatures of outbound callbacks (CONTRACT §5).

`X-BeastFlow-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>`.
The timestamp is signed with the body so that a captured request cannot be
replayed later: receivers reject a `t` too far from their clock.
"""

from __future__ import annotations

from beastflow.crypto import hmac_sha256_hex, signatures_match

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
