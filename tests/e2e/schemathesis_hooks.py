"""Loaded by the schemathesis run of test_api_fuzz.py (config `hooks`): how to send what it cannot send alone."""

from __future__ import annotations

import json
from typing import Any

import schemathesis


@schemathesis.serializer("application/x-ndjson")
def ndjson(context: Any, value: Any) -> bytes:
    """Ingest's NDJSON body is described as a string of lines: sent as its bytes (lone surrogates too)."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    return json.dumps(value).encode()
