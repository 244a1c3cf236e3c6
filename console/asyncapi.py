"""The websockets as an AsyncAPI 3.0 document, served at /api/asyncapi.json beside the OpenAPI one.

Drawn from the code that serves them: the changes stream and the ping of
engines/consumers.py (API key), the console's live overview of
console/consumers.py (session), their close codes, the change frame's
schema from the same documentation model as the changes feed's items
(engines/openapi.ChangeOut). docs/asyncapi.yaml is the committed copy
(`make openapi` writes both; tests/beastflow/test_asyncapi.py compares them
and validates the document against the AsyncAPI 3.0.0 JSON Schema).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest, JsonResponse

from beastflow.openapi import example_of
from console import consumers as console_consumers
from engines import consumers as engines_consumers
from engines.openapi import ChangeOut

ASYNCAPI_VERSION = "3.0.0"


def _ref(path: str) -> dict[str, str]:
    return {"$ref": path}


def _close_codes(codes: dict[int, str]) -> dict[str, str]:
    return {str(code): meaning for code, meaning in sorted(codes.items())}


STATUS_ROW: dict[str, Any] = {
    "type": "object",
    "description": "One source as the console's overview shows it.",
    "required": ["id", "name", "mode", "paused", "health_band"],
    "properties": {
        "id": {"type": "integer"},
        "name": {"type": "string"},
        "url": {"type": "string", "description": "The console page of the source."},
        "mode": {"type": "string", "enum": ["event", "hybrid", "polling"]},
        "mode_label": {"type": "string"},
        "mode_since": {"type": ["string", "null"], "format": "date-time"},
        "paused": {"type": "boolean"},
        "health_score": {"type": ["integer", "null"]},
        "health_band": {"type": "string"},
        "verdict": {"type": ["string", "null"]},
        "events_per_s": {"type": ["number", "null"]},
        "events_per_s_text": {"type": "string"},
        "last_event_at": {"type": ["string", "null"], "format": "date-time"},
        "contiguous_seq": {"type": ["integer", "null"]},
        "upstream_seq": {"type": ["integer", "null"]},
        "highest_seq": {"type": ["integer", "null"]},
        "seq_behind": {"type": ["integer", "null"]},
        "open_failures": {"type": "integer"},
    },
}


def _change_schema() -> dict[str, Any]:
    schema = ChangeOut.model_json_schema()
    schema.pop("title", None)
    return schema


def _rows_message(kind: str) -> dict[str, Any]:
    """The console overview's frames: `snapshot` (every row, on connect) and `update` (rows that changed)."""
    return {
        "name": kind,
        "payload": {
            "type": "object",
            "required": ["type", "rows"],
            "properties": {
                "type": {"const": kind},
                "rows": {"type": "array", "items": _ref("#/components/schemas/StatusRow")},
            },
        },
    }


def asyncapi_document() -> dict[str, Any]:
    """The document (a dict ready for JSON or YAML)."""
    changes_close = _close_codes(
        {
            engines_consumers.CLOSE_BAD_REQUEST: "after or source unreadable (the reason says which)",
            engines_consumers.CLOSE_UNAUTHORIZED: "no API key, or an unknown or revoked one",
            engines_consumers.CLOSE_NOT_FOUND: "source is not one of the tenant's",
            engines_consumers.CLOSE_GONE: "retention removed changes after `after`: re-read the records, resume "
            "with after >= the floor named in the reason",
            engines_consumers.CLOSE_INTERNAL_ERROR: "the server failed: reconnect with the last seq received",
        }
    )
    console_close = _close_codes(
        {
            console_consumers.CLOSE_UNAUTHORIZED: "not signed in: sign in again",
            console_consumers.CLOSE_FORBIDDEN: "signed in, but not a member of this tenant",
            console_consumers.CLOSE_NOT_FOUND: "the host is no tenant's",
        }
    )
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "BeastFlow websockets",
            "version": "1.0.0",
            "description": (
                "Live changes for clients (API key), and the console's live overview (session). Every frame is one "
                "JSON object. The changes stream and the overview refuse after the handshake: the socket is "
                "accepted, then closed with 4000 + the HTTP status the refusal stands for (`x-close-codes` on each "
                "channel), so even a browser can tell why. The HTTP API is described by the OpenAPI document at "
                "/api/schema/; see docs/api.md."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {
                "host": "localhost:8000",
                "protocol": "ws",
                "description": "`make up`; use wss:// and the service's own host in production.",
                "security": [_ref("#/components/securitySchemes/bearer"), _ref("#/components/securitySchemes/token")],
            }
        },
        "channels": {
            "changes": {
                "address": "/ws/v1/changes",
                "title": "The changes stream",
                "description": (
                    "Every change with seq > `after` (the backlog from the database, then live changes as they "
                    "commit), one frame each, in seq order, without gaps or duplicates, the same item as "
                    "GET /api/v1/changes. To resume after a disconnect, reconnect with after = the last seq "
                    "received. Whatever the client sends is ignored."
                ),
                "messages": {"change": _ref("#/components/messages/change")},
                "bindings": {
                    "ws": {
                        "bindingVersion": "0.1.0",
                        "query": {
                            "type": "object",
                            "properties": {
                                "after": {
                                    "type": "integer",
                                    "minimum": 0,
                                    "default": 0,
                                    "description": "Send changes with seq > after (0: the whole kept history).",
                                },
                                "source": {"type": "integer", "minimum": 1, "description": "Only this source."},
                                "token": {
                                    "type": "string",
                                    "description": "The API key, where the client cannot set a header (browsers).",
                                },
                            },
                        },
                    }
                },
                "x-close-codes": changes_close,
            },
            "ping": {
                "address": "/ws/v1/ping",
                "title": "Ping",
                "description": "Proves the path end to end: key -> tenant -> answer.",
                "messages": {
                    "hello": _ref("#/components/messages/hello"),
                    "ping": _ref("#/components/messages/ping"),
                    "pong": _ref("#/components/messages/pong"),
                    "error": _ref("#/components/messages/error"),
                },
                "x-close-codes": _close_codes(
                    {engines_consumers.CLOSE_UNAUTHORIZED: "no or unknown API key (at the handshake)"}
                ),
            },
            "consoleOverview": {
                "address": "/ws/console/overview",
                "title": "The console's live overview",
                "description": (
                    "On a tenant's console host, signed in (session cookie): a snapshot of the sources' status "
                    "rows, then the rows each monitor tick judged. `?source=<id>` follows one source."
                ),
                "messages": {
                    "snapshot": _ref("#/components/messages/snapshot"),
                    "update": _ref("#/components/messages/update"),
                },
                "bindings": {
                    "ws": {
                        "bindingVersion": "0.1.0",
                        "query": {
                            "type": "object",
                            "properties": {"source": {"type": "integer", "description": "Only this source's rows."}},
                        },
                    }
                },
                "x-close-codes": console_close,
            },
        },
        "operations": {
            "sendChanges": {
                "action": "send",
                "title": "The server sends each change",
                "channel": _ref("#/channels/changes"),
                "messages": [_ref("#/channels/changes/messages/change")],
            },
            "sendHello": {
                "action": "send",
                "channel": _ref("#/channels/ping"),
                "messages": [_ref("#/channels/ping/messages/hello")],
            },
            "receivePing": {
                "action": "receive",
                "channel": _ref("#/channels/ping"),
                "messages": [_ref("#/channels/ping/messages/ping")],
                "reply": {
                    "channel": _ref("#/channels/ping"),
                    "messages": [_ref("#/channels/ping/messages/pong"), _ref("#/channels/ping/messages/error")],
                },
            },
            "sendOverview": {
                "action": "send",
                "channel": _ref("#/channels/consoleOverview"),
                "messages": [
                    _ref("#/channels/consoleOverview/messages/snapshot"),
                    _ref("#/channels/consoleOverview/messages/update"),
                ],
                "security": [_ref("#/components/securitySchemes/session")],
            },
        },
        "components": {
            "schemas": {"Change": _change_schema(), "StatusRow": STATUS_ROW},
            "messages": {
                "change": {
                    "name": "change",
                    "title": "A committed change",
                    "payload": _ref("#/components/schemas/Change"),
                    "examples": [{"payload": example_of(ChangeOut)}],
                },
                "hello": {
                    "name": "hello",
                    "payload": {
                        "type": "object",
                        "required": ["type", "tenant"],
                        "properties": {"type": {"const": "hello"}, "tenant": {"type": "string"}},
                    },
                },
                "ping": {
                    "name": "ping",
                    "payload": {"type": "object", "required": ["type"], "properties": {"type": {"const": "ping"}}},
                },
                "pong": {
                    "name": "pong",
                    "payload": {
                        "type": "object",
                        "required": ["type", "tenant", "at"],
                        "properties": {
                            "type": {"const": "pong"},
                            "tenant": {"type": "string"},
                            "at": {"type": "number", "description": "Server time, unix seconds."},
                        },
                    },
                },
                "error": {
                    "name": "error",
                    "payload": {
                        "type": "object",
                        "required": ["type", "detail"],
                        "properties": {"type": {"const": "error"}, "detail": {"type": "string"}},
                    },
                },
                "snapshot": _rows_message("snapshot"),
                "update": _rows_message("update"),
            },
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A tenant's API key: `Authorization: Bearer <api_key>`.",
                },
                "token": {
                    "type": "httpApiKey",
                    "in": "query",
                    "name": "token",
                    "description": "The API key as `?token=`, for clients that cannot set headers.",
                },
                "session": {
                    "type": "httpApiKey",
                    "in": "cookie",
                    "name": settings.SESSION_COOKIE_NAME,
                    "description": "The console's session, on the tenant's console host.",
                },
            },
        },
    }


def asyncapi_view(request: HttpRequest) -> JsonResponse:
    """GET /api/asyncapi.json: public, like /api/schema/."""
    return JsonResponse(asyncapi_document(), json_dumps_params={"indent": 2})
