"""The SDK's pure parts: retry decisions, problem parsing, event ids, websocket URLs and close codes."""

from __future__ import annotations

import json

from beastflow_sdk import GoneError, RateLimitedError, RetryPolicy, ServiceUnavailableError, UnprocessableError
from beastflow_sdk._core import Call, ndjson, retry_info, with_id
from beastflow_sdk.errors import error_from_response, parse_retry_after, websocket_error
from beastflow_sdk.follow import changes_url


def test_a_retry_after_is_obeyed_up_to_the_policys_ceiling_and_attempts_run_out() -> None:
    policy = RetryPolicy(attempts=3, backoff_s=0.5, max_retry_after_s=60)
    assert policy.delay(1, 7.0) == 7.0
    assert policy.delay(1, 61.0) is None  # longer than we would sleep: raised instead
    assert 0 <= policy.delay(2, None) <= 1.0  # type: ignore[operator]
    assert policy.delay(3, 1.0) is None


def test_only_calls_safe_to_repeat_are_retried_and_only_on_a_broken_connection_or_a_busy_answer() -> None:
    policy = RetryPolicy(attempts=2)
    read, create = Call("GET", "/api/v1/sources", retry=True), Call("POST", "/api/v1/sources")
    busy = error_from_response(503, {"Retry-After": "3"}, b'{"status": 503, "detail": "database down"}')
    broken = OSError("connection reset")
    # a read: retried after a 503 as Retry-After says, and after a broken connection
    info = retry_info(read, policy, 1, busy)
    assert info is not None and (info.status, info.delay_s, info.error) == (503, 3.0, "database down")
    info = retry_info(read, policy, 1, broken)
    assert info is not None and info.status is None and info.error == repr(broken)
    # not once the attempts are spent, nor on an answer a retry cannot change
    assert retry_info(read, policy, 2, busy) is None
    assert retry_info(read, policy, 1, error_from_response(500, {}, b"")) is None
    # a create: never sent twice
    assert retry_info(create, policy, 1, busy) is None and retry_info(create, policy, 1, broken) is None


def test_a_problem_becomes_the_typed_exception_with_its_fields() -> None:
    body = json.dumps(
        {
            "type": "https://beastflow.dev/problems/unprocessable-entity",
            "title": "Unprocessable Entity",
            "status": 422,
            "detail": "The request is invalid; see errors.",
            "errors": [{"index": 3, "message": "version: not an integer"}],
        }
    ).encode()
    error = error_from_response(422, {"Content-Type": "application/problem+json"}, body)
    assert isinstance(error, UnprocessableError)
    assert (error.status, error.title, error.errors[0]["index"]) == (422, "Unprocessable Entity", 3)
    limited = error_from_response(429, {"Retry-After": "2"}, b'{"status": 429, "detail": "over"}')
    assert isinstance(limited, RateLimitedError) and limited.retry_after == 2.0
    down = error_from_response(503, {}, b"<html>proxy</html>")
    assert isinstance(down, ServiceUnavailableError) and down.detail == "<html>proxy</html>"
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past: now
    assert parse_retry_after("soon") is None


def test_events_get_an_id_once_and_keep_their_own() -> None:
    given = with_id({"id": "outbox-7", "type": "upsert"})
    filled = with_id({"type": "upsert"})
    assert given["id"] == "outbox-7" and filled["id"].startswith("evt_")
    lines = ndjson([{"type": "heartbeat"}, {"id": "x", "type": "heartbeat"}]).splitlines()
    assert [json.loads(line)["id"] for line in lines][1] == "x" and len(lines) == 2


def test_websocket_urls_and_close_codes() -> None:
    assert (
        changes_url("https://bf.example.com/", after=12, source=3)
        == "wss://bf.example.com/ws/v1/changes?after=12&source=3"
    )
    gone = websocket_error(4410, "gone: resume with after >= 1500")
    assert isinstance(gone, GoneError) and gone.floor == 1500 and gone.status == 410
