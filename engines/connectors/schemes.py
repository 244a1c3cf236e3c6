"""Is this webhook really from the source's upstream? One check per push scheme. Pure.

Each scheme is the upstream's own published algorithm (see docs/push.md):

| scheme              | header(s)                                          | signed bytes                  |
| ------------------- | -------------------------------------------------- | ----------------------------- |
| `beastflow`         | X-BeastFlow-Signature: sha256=<hex>                | body                          |
| `github`            | X-Hub-Signature-256: sha256=<hex>                  | body                          |
| `shopify`           | X-Shopify-Hmac-Sha256: <base64>                    | body                          |
| `stripe`            | Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>...]  | "<t>." + body                 |
| `standard-webhooks` | webhook-id, webhook-timestamp, webhook-signature:  | "<id>.<timestamp>." + body    |
|                     | "v1,<base64> v1,<base64> ..."                      | (key: base64 after "whsec_")  |

All HMAC-SHA256, compared in constant time (hmac.compare_digest). The two
timestamped schemes refuse a timestamp more than `tolerance_s` away from now,
in either direction: an old one is a replay, one from the future a replay
prepared in advance (or a clock far off).

Standard Webhooks is verified here rather than by the `standardwebhooks`
package's `Webhook.verify`, for what it does, not for speed (it costs a few
microseconds more per request, well under 1% of one: docs/push.md has the
figures): it fixes the replay window at five minutes where a source chooses
its own, and on a malformed header or a body that is not UTF-8 it raises
ValueError, binascii.Error or UnicodeDecodeError instead of its own error,
which a caller would have to tell apart from a bug. The tests check that the
package and this module agree on requests signed by the reference library.

Headers are given as a mapping of lower-cased names, as ASGI delivers them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

BEASTFLOW = "beastflow"
STANDARD_WEBHOOKS = "standard-webhooks"
STRIPE = "stripe"
GITHUB = "github"
SHOPIFY = "shopify"
SCHEMES = (BEASTFLOW, STANDARD_WEBHOOKS, STRIPE, GITHUB, SHOPIFY)
TIMESTAMPED = (STANDARD_WEBHOOKS, STRIPE)

BEASTFLOW_HEADER = "X-BeastFlow-Signature"
DEFAULT_TOLERANCE_S = 300.0
# A unix time in seconds has 10 digits until 2286: anything much longer is not one
# (and int() of a very long digit string is slow, or refused).
_MAX_TIMESTAMP_DIGITS = 12
_STANDARD_WEBHOOKS_PREFIX = "whsec_"


class SignatureError(Exception):
    """The request is not proven to come from the upstream (answered 401, nothing stored)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def _hmac(key: bytes, *parts: bytes) -> hmac.HMAC:
    mac = hmac.new(key, digestmod=hashlib.sha256)
    for part in parts:
        mac.update(part)  # no concatenated copy of a large body
    return mac


def _same(expected: bytes, given: bytes) -> bool:
    return hmac.compare_digest(expected, given)


def _hex_matches(expected_hex: str, given: str) -> bool:
    # Bytes, not str: compare_digest refuses str holding anything but ASCII.
    return _same(expected_hex.encode(), given.strip().lower().encode("utf-8", "replace"))


def standard_webhooks_key(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret: the base64 after "whsec_" (padding optional, as the spec allows)."""
    raw = secret.removeprefix(_STANDARD_WEBHOOKS_PREFIX).strip()
    try:
        return base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("a standard-webhooks secret is 'whsec_' followed by base64") from exc


@dataclass(frozen=True)
class Verifier:
    """A source's scheme with its key and replay window, made once per source (service.SourceMeta)."""

    scheme: str
    key: bytes = field(repr=False)
    tolerance_s: float = DEFAULT_TOLERANCE_S

    def verify(self, headers: Mapping[str, str], body: bytes, *, now: float | None = None) -> None:
        """Return when the request is the upstream's; raise SignatureError (-> 401) otherwise."""
        _CHECKS[self.scheme](self, headers, body, time.time() if now is None else now)


def verifier(scheme: str, secret: str, *, tolerance_s: float = DEFAULT_TOLERANCE_S) -> Verifier:
    """The verifier of `scheme` with the source's secret; ValueError for an unknown scheme or an unusable secret."""
    if scheme not in _CHECKS:
        raise ValueError(f"unknown push scheme {scheme!r}")
    if not secret:
        raise ValueError(f"scheme {scheme} needs a secret")
    key = standard_webhooks_key(secret) if scheme == STANDARD_WEBHOOKS else secret.encode()
    return Verifier(scheme=scheme, key=key, tolerance_s=tolerance_s)


def _timestamp(value: str, header: str, tolerance_s: float, now: float) -> bytes:
    """The timestamp as it was signed, once it is within the replay window."""
    text = value.strip()
    if not text.isdigit() or len(text) > _MAX_TIMESTAMP_DIGITS:
        raise SignatureError(f"{header} must be a unix time in seconds.")
    moment = int(text)
    skew = now - moment
    if skew > tolerance_s:
        raise SignatureError(
            f"The {header} is {skew:.0f} s old, beyond the source's replay window of {tolerance_s:g} s."
        )
    if -skew > tolerance_s:
        raise SignatureError(
            f"The {header} is {-skew:.0f} s in the future, beyond the source's replay window of {tolerance_s:g} s."
        )
    return text.encode()


def _check_beastflow(verifier: Verifier, headers: Mapping[str, str], body: bytes, now: float) -> None:
    signature = headers.get("x-beastflow-signature")
    if not signature:
        raise SignatureError(f"Send an API key or an {BEASTFLOW_HEADER} header.")
    check_beastflow_signature(verifier.key, signature, body, tolerance_s=verifier.tolerance_s, now=now)


def check_beastflow_signature(
    key: bytes,
    signature: str,
    body: bytes,
    *,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    require_timestamp: bool = False,
    now: float | None = None,
) -> None:
    """`t=<unix>,v1=<hex HMAC-SHA256(key, "<t>.<body>")>` within the replay window, or the
    untimed `sha256=<hex HMAC-SHA256(key, body)>` unless `require_timestamp`. Raises SignatureError."""
    parts = dict(part.strip().partition("=")[::2] for part in signature.split(","))
    if "t" in parts or "v1" in parts:
        stamp, given = parts.get("t", ""), parts.get("v1", "")
        if not stamp or not given:
            raise SignatureError(f"{BEASTFLOW_HEADER} must be 't=<unix>,v1=<hex>'.")
        signed_stamp = _timestamp(
            stamp, f"{BEASTFLOW_HEADER} timestamp", tolerance_s, time.time() if now is None else now
        )
        if not _hex_matches(_hmac(key, signed_stamp, b".", body).hexdigest(), given):
            raise SignatureError("The signature does not match the timestamp and body.")
        return
    if require_timestamp:
        raise SignatureError(f"This source requires the timed form {BEASTFLOW_HEADER}: t=<unix>,v1=<hex>.")
    algorithm, _, given = signature.partition("=")
    if algorithm.strip().lower() != "sha256" or not given:
        raise SignatureError(f"{BEASTFLOW_HEADER} must be 't=<unix>,v1=<hex>' or 'sha256=<hex>'.")
    if not _hex_matches(_hmac(key, body).hexdigest(), given):
        raise SignatureError("The signature does not match the body.")


def _check_github(verifier: Verifier, headers: Mapping[str, str], body: bytes, now: float) -> None:
    signature = headers.get("x-hub-signature-256")
    if not signature:
        raise SignatureError("Send the X-Hub-Signature-256 header (the webhook needs a secret on GitHub's side).")
    algorithm, _, given = signature.partition("=")
    if algorithm.strip().lower() != "sha256" or not given:
        raise SignatureError("X-Hub-Signature-256 must be 'sha256=<hex>'.")
    if not _hex_matches(_hmac(verifier.key, body).hexdigest(), given):
        raise SignatureError("The X-Hub-Signature-256 does not match the body and the source's push secret.")


def _check_shopify(verifier: Verifier, headers: Mapping[str, str], body: bytes, now: float) -> None:
    signature = headers.get("x-shopify-hmac-sha256")
    if not signature:
        raise SignatureError("Send the X-Shopify-Hmac-Sha256 header.")
    try:
        given = base64.b64decode(signature.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError("X-Shopify-Hmac-Sha256 must be base64.") from None
    if not _same(_hmac(verifier.key, body).digest(), given):
        raise SignatureError("The X-Shopify-Hmac-Sha256 does not match the body and the source's push secret.")


def _check_stripe(verifier: Verifier, headers: Mapping[str, str], body: bytes, now: float) -> None:
    header = headers.get("stripe-signature")
    if not header:
        raise SignatureError("Send the Stripe-Signature header.")
    stamp: str | None = None
    candidates: list[str] = []
    for part in header.split(","):
        name, _, value = part.partition("=")
        name = name.strip()
        if name == "t" and stamp is None:
            stamp = value
        elif name == "v1" and value:
            candidates.append(value)  # several while Stripe rolls a secret
    if stamp is None or not candidates:
        raise SignatureError("Stripe-Signature must carry t=<unix time> and at least one v1=<hex>.")
    signed_stamp = _timestamp(stamp, "Stripe-Signature timestamp", verifier.tolerance_s, now)
    expected = _hmac(verifier.key, signed_stamp, b".", body).hexdigest()
    # Every candidate is compared: how many there are is no secret, which one matched is.
    if not sum(_hex_matches(expected, given) for given in candidates):
        raise SignatureError("No v1 signature in Stripe-Signature matches the body and the source's push secret.")


def _check_standard_webhooks(verifier: Verifier, headers: Mapping[str, str], body: bytes, now: float) -> None:
    message_id = headers.get("webhook-id")
    stamp = headers.get("webhook-timestamp")
    signatures = headers.get("webhook-signature")
    if not (message_id and stamp and signatures):
        raise SignatureError("Send the webhook-id, webhook-timestamp and webhook-signature headers.")
    signed_stamp = _timestamp(stamp, "webhook-timestamp", verifier.tolerance_s, now)
    expected = _hmac(verifier.key, message_id.encode("latin-1", "replace"), b".", signed_stamp, b".", body).digest()
    matched = False
    for entry in signatures.split(" "):
        version, _, value = entry.partition(",")
        if version != "v1" or not value:
            continue  # another version (v1a: asymmetric) is for receivers that hold a public key
        try:
            given = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            continue
        matched |= _same(expected, given)
    if not matched:
        raise SignatureError("No v1 signature in webhook-signature matches the body and the source's push secret.")


_CHECKS = {
    BEASTFLOW: _check_beastflow,
    GITHUB: _check_github,
    SHOPIFY: _check_shopify,
    STRIPE: _check_stripe,
    STANDARD_WEBHOOKS: _check_standard_webhooks,
}
