"""BeastFlow's Python SDK: a thin, typed layer over the HTTP API and the changes websocket.

    from beastflow_sdk import Client, upsert

    with Client() as bf:  # BEASTFLOW_URL, BEASTFLOW_API_KEY
        bf.push(source_id, upsert("order-42", 7, {"total": 12.5}))
        for change in bf.follow(after=last_seq):
            handle(change)

See docs/sdk.md in the BeastFlow repository.
"""

from __future__ import annotations

from beastflow_sdk._core import NO_RETRY, Call, RetryInfo, RetryPolicy, delete, heartbeat, new_event_id, upsert
from beastflow_sdk.aio import AsyncClient
from beastflow_sdk.client import Client
from beastflow_sdk.errors import (
    ApiError,
    AuthenticationError,
    BadRequestError,
    BeastFlowError,
    ConflictError,
    GoneError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitedError,
    ServerError,
    ServiceUnavailableError,
    TransportError,
    UnprocessableError,
    WebhookVerificationError,
)
from beastflow_sdk.follow import AsyncChangeFollower, Backoff, ChangeFollower
from beastflow_sdk.webhooks import (
    beastflow_signature,
    standard_webhooks_signature,
    verify_beastflow,
    verify_callback,
    verify_standard_webhooks,
)

__version__ = "0.1.0"

__all__ = [
    "NO_RETRY",
    "ApiError",
    "AsyncChangeFollower",
    "AsyncClient",
    "AuthenticationError",
    "Backoff",
    "BadRequestError",
    "BeastFlowError",
    "Call",
    "ChangeFollower",
    "Client",
    "ConflictError",
    "GoneError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RateLimitedError",
    "RetryInfo",
    "RetryPolicy",
    "ServerError",
    "ServiceUnavailableError",
    "TransportError",
    "UnprocessableError",
    "WebhookVerificationError",
    "beastflow_signature",
    "delete",
    "heartbeat",
    "new_event_id",
    "standard_webhooks_signature",
    "upsert",
    "verify_beastflow",
    "verify_callback",
    "verify_standard_webhooks",
]
