"""The ingest operation in /api/schema/: POST /api/v1/sources/{source_id}/events.

Ingest is served outside DRF (the raw ASGI fast path, engines/ingest/fastpath.py,
and the plain Django view engines/ingest/views.py), so drf-spectacular does
not see it. `ingest_operation_hook` (a postprocessing hook, after
beastflow.openapi's) writes the operation from the facts below, taken from the
code that serves it: the event shape and limits of engines/ingest/validation.py,
the push schemes of engines/connectors/schemes.py (docs/push.md), the answers of
engines/ingest/service.py. tests/beastflow/test_openapi.py keeps them honest by
checking the limits against those modules, and the schemathesis run pushes
to a live server through this description.
"""

from __future__ import annotations

from typing import Any

from beastflow.openapi import problem_ref
from engines.connectors import schemes
from engines.ingest import service, validation

PATH = "/api/v1/sources/{source_id}/events"

# The push schemes' credentials, as security schemes: any one of them (or an API key) lets a push in.
# Keyed by engines.connectors.schemes' scheme names (a test checks every scheme is here).
SCHEME_SECURITY = {
    schemes.BEASTFLOW: "beastflowSignature",
    schemes.GITHUB: "githubSignature",
    schemes.STRIPE: "stripeSignature",
    schemes.SHOPIFY: "shopifyHmac",
    schemes.STANDARD_WEBHOOKS: "standardWebhooks",
}
SIGNATURE_SCHEMES: dict[str, dict[str, Any]] = {
    "beastflowSignature": {
        "type": "apiKey",
        "in": "header",
        "name": "X-BeastFlow-Signature",
        "description": (
            "Push scheme `beastflow` (the default), for a push without an API key: "
            "`t=<unix>,v1=<hex HMAC-SHA256(webhook_secret, '<t>.' + body)>`, "
            "or the untimed `sha256=<hex HMAC of body>` unless the source sets `push.require_timestamp`."
        ),
    },
    "githubSignature": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Hub-Signature-256",
        "description": "Push scheme `github`: GitHub's own `sha256=<hex HMAC-SHA256(push secret, body)>`.",
    },
    "stripeSignature": {
        "type": "apiKey",
        "in": "header",
        "name": "Stripe-Signature",
        "description": "Push scheme `stripe`: Stripe's `t=<unix>,v1=<hex HMAC-SHA256(secret, '<t>.' + body)>`.",
    },
    "shopifyHmac": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Shopify-Hmac-Sha256",
        "description": "Push scheme `shopify`: Shopify's `<base64 HMAC-SHA256(secret, body)>`.",
    },
    "standardWebhooks": {
        "type": "apiKey",
        "in": "header",
        "name": "webhook-signature",
        "description": (
            "Push scheme `standard-webhooks`: "
            "`v1,<base64 HMAC-SHA256(key, '<webhook-id>.<webhook-timestamp>.' + body)>` "
            "(several, space-separated, during a key rotation), with the `webhook-id` and `webhook-timestamp` headers; "
            "the key is the base64 after `whsec_` of the push secret."
        ),
    },
}

EVENT = {
    "type": "object",
    "title": "PushEvent",
    "description": (
        "One change of one record. `key`, `version` are required for upsert and delete, `data` for upsert. "
        "A version not above the stored one changes nothing; "
        "an id seen before is a duplicate (counted, not stored twice)."
    ),
    "required": ["id", "type"],
    "properties": {
        "id": {
            "type": "string",
            "minLength": 1,
            "maxLength": validation.MAX_ID_LEN,
            "description": "The event's id: idempotency key.",
        },
        "type": {"type": "string", "enum": list(validation.TYPES)},
        "key": {"type": "string", "minLength": 1, "maxLength": validation.MAX_KEY_LEN, "description": "The record."},
        "version": {
            "type": "integer",
            "minimum": 0,
            "maximum": validation.BIGINT_MAX,
            "description": "The record's version at the upstream; the highest wins.",
        },
        "data": {
            "type": ["object", "null"],
            "description": (
                "The record (an upsert's whole state). Checked against the source's `data_schema` when it has one; "
                f"no NUL character, at most {validation.MAX_DEPTH} levels deep."
            ),
        },
        "seq": {
            "type": ["integer", "null"],
            "minimum": 0,
            "maximum": validation.BIGINT_MAX,
            "description": "The upstream's sequence number: gaps are noticed and polled for.",
        },
        "occurred_at": {
            "type": ["string", "null"],
            "format": "date-time",
            "description": "When it happened at the upstream (ISO 8601 with a time zone).",
        },
    },
}
BATCH = {
    "type": "object",
    "title": "PushBatch",
    "description": f"Up to {validation.MAX_EVENTS} events, committed together or not at all.",
    "required": ["events"],
    "properties": {
        "events": {
            "type": "array",
            "minItems": 1,
            "maxItems": validation.MAX_EVENTS,
            "items": {"$ref": "#/components/schemas/PushEvent"},
        }
    },
}
UPSTREAM_BODY = {
    "type": "object",
    "title": "UpstreamWebhook",
    "description": (
        "An upstream's own webhook, for a source with a native push scheme (github, stripe, shopify, "
        "standard-webhooks): read into events by the source's push mapping (docs/push.md; try one with "
        "POST /api/v1/sources/{source_id}/mapping/preview)."
    ),
    "additionalProperties": True,
}
ACCEPTED = {
    "type": "object",
    "title": "PushAccepted",
    "description": "Answered only after the commit: the accepted events are durable.",
    "required": ["accepted", "duplicates"],
    "properties": {
        "accepted": {"type": "integer", "minimum": 0, "description": "Events stored now."},
        "duplicates": {"type": "integer", "minimum": 0, "description": "Events whose id was seen before."},
        "ignored": {
            "type": "integer",
            "minimum": 0,
            "description": "Upstream's own requests only: 1 when the mapping's filter left it out (a GitHub ping).",
        },
    },
}

_SINGLE = {"id": "evt_1001", "type": "upsert", "key": "order-42", "version": 7, "data": {"status": "paid"}}
_EXAMPLES = {
    "single": {"summary": "One event", "value": _SINGLE},
    "batch": {
        "summary": "A batch",
        "value": {
            "events": [
                _SINGLE,
                {"id": "evt_1002", "type": "delete", "key": "order-41", "version": 3},
                {"id": "evt_1003", "type": "heartbeat", "seq": 1003},
            ]
        },
    },
    "github": {
        "summary": "GitHub issues webhook (push scheme github; with X-Hub-Signature-256, X-GitHub-Event)",
        "value": {"action": "edited", "issue": {"id": 444500041, "number": 7, "updated_at": "2026-05-15T15:20:18Z"}},
    },
    "stripe": {
        "summary": "Stripe event (push scheme stripe; with Stripe-Signature)",
        "value": {
            "id": "evt_1Q2w3E",
            "type": "customer.updated",
            "created": 1765000000,
            "data": {"object": {"id": "cus_9s6XKzkNRiz8i3", "email": "jenny@example.com"}},
        },
    },
    "shopify": {
        "summary": "Shopify orders/updated (push scheme shopify; with X-Shopify-Hmac-Sha256, X-Shopify-Topic)",
        "value": {"id": 820982911946154500, "updated_at": "2026-05-15T15:20:18-04:00", "financial_status": "paid"},
    },
    "standard-webhooks": {
        "summary": "Standard Webhooks sender, e.g. Svix (with webhook-id, webhook-timestamp, webhook-signature)",
        "value": {"type": "contact.updated", "timestamp": "2026-05-15T15:20:18Z", "data": {"id": "ct_1", "v": 3}},
    },
}


def ingest_operation() -> dict[str, Any]:
    return {
        "operationId": "sources_events_push",
        "summary": "Push events (single, batch or NDJSON) or an upstream's own webhook; 202 once committed",
        "description": (
            "The one call every upstream makes. Authenticate with the tenant's API key, or without one with the "
            "source's push scheme: `X-BeastFlow-Signature` over the body (scheme `beastflow`), or the upstream's "
            "own signature headers (github, stripe, shopify, standard-webhooks), whose body the source's push "
            "mapping reads. A body is checked whole before anything is stored: one bad event refuses the batch "
            "(422, `errors[].index` names it). Served by a fast path in front of Django; the same checks either way. "
            f"Bodies up to {validation.MAX_EVENTS} events and {service.MAX_BODY_BYTES} bytes."
        ),
        "tags": ["v1"],
        "parameters": [
            {
                "name": "source_id",
                "in": "path",
                "required": True,
                "description": "The source's id (global: a push without an API key is routed by it).",
                "schema": {"type": "integer", "minimum": 1},
            },
            {
                "name": "webhook-id",
                "in": "header",
                "required": False,
                "description": "Standard Webhooks: the message id (signed).",
                "schema": {"type": "string"},
            },
            {
                "name": "webhook-timestamp",
                "in": "header",
                "required": False,
                "description": "Standard Webhooks: unix seconds (signed; refused outside the replay window).",
                "schema": {"type": "string"},
            },
        ],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "anyOf": [
                            {"$ref": "#/components/schemas/PushEvent"},
                            {"$ref": "#/components/schemas/PushBatch"},
                            {"$ref": "#/components/schemas/UpstreamWebhook"},
                        ]
                    },
                    "examples": _EXAMPLES,
                },
                "application/x-ndjson": {
                    "schema": {
                        "type": "string",
                        "description": "One PushEvent per line (also accepted as application/jsonlines).",
                    },
                    "example": '{"id":"evt_1","type":"upsert","key":"a","version":1,"data":{"n":1}}\n'
                    '{"id":"evt_2","type":"delete","key":"b","version":4}\n',
                },
            },
        },
        "security": [{"bearerAuth": []}, *({name: []} for name in SIGNATURE_SCHEMES)],
        "responses": {
            "202": {
                "description": "Committed: the accepted events are durable and on the changes feed.",
                "content": {
                    "application/json": {
                        "schema": {"$ref": "#/components/schemas/PushAccepted"},
                        "examples": {
                            "events": {"value": {"accepted": 2, "duplicates": 1}},
                            "upstream webhook": {"value": {"accepted": 1, "duplicates": 0, "ignored": 0}},
                            "filtered out (GitHub ping)": {"value": {"accepted": 0, "duplicates": 0, "ignored": 1}},
                        },
                    }
                },
            },
            **{str(status): problem_ref(status) for status in (400, 401, 404, 413, 422, 429, 503)},
        },
    }


def ingest_operation_hook(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: the ingest operation and its components."""
    components = result.setdefault("components", {})
    components.setdefault("securitySchemes", {}).update(SIGNATURE_SCHEMES)
    schemas = components.setdefault("schemas", {})
    schemas.update({"PushEvent": EVENT, "PushBatch": BATCH, "UpstreamWebhook": UPSTREAM_BODY, "PushAccepted": ACCEPTED})
    paths = result.setdefault("paths", {})
    paths[PATH] = {"post": ingest_operation()}
    result["paths"] = dict(sorted(paths.items()))
    return result
