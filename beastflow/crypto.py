"""Secrets at rest: webhook secrets are stored encrypted, never in clear.

The key comes from BEASTFLOW_ENCRYPTION_KEY (a Fernet key) or, when unset,
is derived from DJANGO_SECRET_KEY with HKDF, so a fresh clone works without
configuration. Rotating it means re-encrypting with MultiFernet.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

from beastflow.env import env_list

__all__ = ["InvalidToken", "decrypt", "encrypt", "hmac_sha256_hex", "signatures_match"]


@functools.cache
def _fernet() -> MultiFernet:
    configured = env_list("BEASTFLOW_ENCRYPTION_KEY", [])
    keys = [Fernet(key.encode()) for key in configured]
    if not keys:
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"beastflow-secrets-v1", info=b"fernet").derive(
            settings.SECRET_KEY.encode()
        )
        keys = [Fernet(base64.urlsafe_b64encode(derived))]
    return MultiFernet(keys)


def encrypt(plain: str) -> str:
    return _fernet().encrypt(plain.encode()).decode()


def decrypt(token: str) -> str:
    return _fernet().decrypt(token.encode()).decode()


def hmac_sha256_hex(secret: str, payload: bytes) -> str:
    return hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()


def signatures_match(expected_hex: str, given_hex: str) -> bool:
    # Constant time, so the comparison leaks nothing about how much matched.
    return hmac.compare_digest(expected_hex.encode(), given_hex.strip().lower().encode())
