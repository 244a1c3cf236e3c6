"""Parse and validate an ingest body as a whole batch (docs/contract.md §4).

Pure. A body is one event, `{"events": [...]}`, or NDJSON. Any invalid event
rejects the whole batch; every error names the event's index.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec

from engines.ingest.hashing import record_hash, record_hash_of_decoded

MAX_EVENTS = 1_000
MAX_ID_LEN = 255
MAX_KEY_LEN = 512
BIGINT_MAX = 2**63 - 1
TYPES = ("upsert", "delete", "heartbeat")
# Objects and lists nested deeper than this inside `data` are refused (see
# docs/security.md): deep enough for any real webhook, far from the limits
# of the JSON decoder, PostgreSQL's jsonb and the recursive hashing.
MAX_DEPTH = 64
_NUL_ESCAPE = b"\\u0000"


def needs_scan(body: bytes) -> bool:
    """Whether a body may hold what PostgreSQL or the hashing cannot take (NUL, deep nesting).

    Two C-speed looks at the raw bytes: JSON writes a NUL only as the escape
    \\u0000, and nesting deeper than MAX_DEPTH needs more brackets than that.
    Most single-event webhooks need no walk of their values at all.
    """
    return _NUL_ESCAPE in body or body.count(b"{") + body.count(b"[") > MAX_DEPTH


def content_problem(value: Any, *, max_depth: int = MAX_DEPTH) -> tuple[str, str] | None:
    """(path, message) of the first value that cannot be stored: a NUL in a string or a key,
    nesting deeper than `max_depth`, a number beyond a double. None when all is well."""
    stack: list[tuple[Any, str, int]] = [(value, "", 1)]
    while stack:
        node, path, depth = stack.pop()
        if isinstance(node, str):
            if "\x00" in node:
                return path, "contains a NUL character (\\u0000)"
        elif isinstance(node, dict):
            if depth > max_depth:
                return path, f"nested deeper than {max_depth} levels"
            for name, child in node.items():
                if isinstance(name, str) and "\x00" in name:
                    return path, "a field name contains a NUL character (\\u0000)"
                stack.append((child, f"{path}.{name}" if path else str(name), depth + 1))
        elif isinstance(node, list):
            if depth > max_depth:
                return path, f"nested deeper than {max_depth} levels"
            stack.extend((child, f"{path}[{index}]", depth + 1) for index, child in enumerate(node))
        elif isinstance(node, float) and not math.isfinite(node):
            return path, "a number out of range"
    return None


def event_content_problems(event_id: Any, key: Any, data: Any) -> list[str]:
    """Messages for an event's id, key and data that PostgreSQL would refuse."""
    problems = []
    if isinstance(event_id, str) and "\x00" in event_id:
        problems.append("id contains a NUL character (\\u0000)")
    if isinstance(key, str) and "\x00" in key:
        problems.append("key contains a NUL character (\\u0000)")
    if data is not None:
        found = content_problem(data)
        if found is not None:
            path, message = found
            problems.append(f"data{'.' + path if path and not path.startswith('[') else path}: {message}")
    return problems


class EventIn(msgspec.Struct, forbid_unknown_fields=False):
    id: str
    type: str
    key: str | None = None
    version: int | None = None
    data: dict[str, Any] | None = None
    seq: int | None = None
    occurred_at: str | None = None


class Event(msgspec.Struct, frozen=True):
    """A validated event. A Struct, not a dataclass: a 1,000-event batch builds
    a thousand of them, and a frozen dataclass's __init__ costs ten times more."""

    id: str
    type: str
    key: str
    version: int
    data: dict[str, Any] | None
    seq: int | None
    occurred_at: datetime | None
    # The record hash of `data` (docs/contract.md §5), computed while validating, on
    # the request's thread, so the commit's serial section does not spend on it.
    hash: str = ""


@dataclass
class Batch:
    events: list[Event] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)


class BodyError(Exception):
    """The body as a whole is unusable (not JSON, wrong shape, too many events)."""

    def __init__(self, status: int, detail: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors or []


_decoder = msgspec.json.Decoder()


def split_body(body: bytes, content_type: str) -> list[Any]:
    """The raw items of a body: one event, an {"events": [...]} envelope, or NDJSON lines."""
    if "ndjson" in content_type or "jsonlines" in content_type:
        items = []
        for line_no, line in enumerate(body.splitlines()):
            if not line.strip():
                continue
            try:
                items.append(_decoder.decode(line))
            except (msgspec.DecodeError, UnicodeDecodeError) as exc:
                raise BodyError(
                    400, f"line {line_no + 1} is not JSON: {exc}", [{"index": len(items), "message": "not JSON"}]
                ) from exc
            except RecursionError as exc:
                raise _too_deep(len(items)) from exc
    else:
        try:
            parsed = _decoder.decode(body)
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:  # invalid UTF-8 is not JSON either
            raise BodyError(400, f"The body is not JSON: {exc}", [{"field": "body", "message": "not JSON"}]) from exc
        except RecursionError as exc:
            raise _too_deep(None) from exc
        if isinstance(parsed, dict) and "events" in parsed:
            items = parsed["events"]
            if not isinstance(items, list):
                raise BodyError(422, "events must be a list.", [{"field": "events", "message": "not a list"}])
        elif isinstance(parsed, dict):
            items = [parsed]
        else:
            raise BodyError(
                422, 'The body must be an event or {"events": [...]}.', [{"field": "body", "message": "not an object"}]
            )
    if not items:
        raise BodyError(422, "The batch is empty.", [{"field": "events", "message": "empty"}])
    if len(items) > MAX_EVENTS:
        raise BodyError(413, f"A batch holds at most {MAX_EVENTS} events; this one has {len(items)}.")
    return items


def _too_deep(index: int | None) -> BodyError:
    where: dict[str, Any] = {"field": "body"} if index is None else {"index": index}
    return BodyError(
        422, f"The body nests deeper than {MAX_DEPTH} levels.", [{**where, "message": f"deeper than {MAX_DEPTH}"}]
    )


DataCheck = Callable[[dict[str, Any]], str | None]
Hasher = Callable[[Any], str]


class _Envelope(msgspec.Struct):
    events: list[EventIn]


_decode_envelope = msgspec.json.Decoder(_Envelope).decode
_decode_single = msgspec.json.Decoder(EventIn).decode


def _check(
    index: int, raw: Any, data_check: DataCheck | None, scan: bool = True
) -> tuple[Event | None, list[dict[str, Any]]]:
    if not isinstance(raw, dict):
        return None, [{"index": index, "message": "an event must be a JSON object"}]
    try:
        item = msgspec.convert(raw, EventIn)
    except msgspec.ValidationError as exc:
        return None, [{"index": index, "message": str(exc)}]
    return _finish(index, item, data_check, record_hash, scan)


def _finish(
    index: int, item: EventIn, data_check: DataCheck | None, hasher: Hasher, scan: bool = True
) -> tuple[Event | None, list[dict[str, Any]]]:
    problems: list[str] = event_content_problems(item.id, item.key, item.data) if scan else []
    if problems:  # nothing else is safe to look at (a schema check would walk the same depth)
        return None, [{"index": index, "message": message} for message in problems]
    if not 1 <= len(item.id) <= MAX_ID_LEN:
        problems.append(f"id must be 1..{MAX_ID_LEN} characters")
    if item.type not in TYPES:
        problems.append(f"type must be one of {', '.join(TYPES)}")
    if item.seq is not None and not 0 <= item.seq <= BIGINT_MAX:
        problems.append("seq must be a non-negative 64-bit integer")
    occurred_at = None
    if item.occurred_at is not None:
        try:
            occurred_at = datetime.fromisoformat(item.occurred_at.replace("Z", "+00:00"))
            if occurred_at.tzinfo is None:
                problems.append("occurred_at needs a time zone")
        except ValueError:
            problems.append("occurred_at must be an ISO 8601 timestamp")
    if item.type in ("upsert", "delete"):
        if item.key is None or not 1 <= len(item.key) <= MAX_KEY_LEN:
            problems.append(f"key is required (1..{MAX_KEY_LEN} characters)")
        if item.version is None or not 0 <= item.version <= BIGINT_MAX:
            problems.append("version is required (a non-negative 64-bit integer)")
    if item.type == "upsert":
        if item.data is None:
            problems.append("data (an object) is required for an upsert")
        elif data_check is not None:
            message = data_check(item.data)
            if message:
                problems.append(f"data does not match the source's schema: {message}")
    if problems:
        return None, [{"index": index, "message": message} for message in problems]
    upsert = item.type == "upsert"
    return (
        Event(
            id=item.id,
            type=item.type,
            key=item.key or "",
            version=item.version or 0,
            data=item.data if upsert else None,
            seq=item.seq,
            occurred_at=occurred_at,
            hash=hasher(item.data) if upsert and item.data is not None else "",
        ),
        [],
    )


def validate(items: list[Any], *, data_check: DataCheck | None = None, scan: bool = True) -> Batch:
    """Every event checked; duplicates of an id inside the batch are errors too.

    `scan`: look for NUL characters, deep nesting and numbers out of range
    (False only when `needs_scan` said the raw body cannot hold any).
    """
    return _collect(_check(index, raw, data_check, scan) for index, raw in enumerate(items))


def decode_and_validate(body: bytes, content_type: str, *, data_check: DataCheck | None = None) -> Batch | None:
    """The quick way for a JSON body whose events all have the right JSON types; None for any other body.

    One typed decode in C (msgspec) instead of a decode to dicts and a
    conversion per event, then the same checks as `validate`. On None (NDJSON,
    a type error, an empty or oversized batch, not JSON at all) the caller
    takes `split_body` and `validate`, which name every problem.
    """
    if "ndjson" in content_type or "jsonlines" in content_type:
        return None
    try:
        items = _decode_envelope(body).events
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):  # ValidationError included
        if b'"events"' in body:  # an envelope, badly typed: the slow path says how
            return None
        try:
            items = [_decode_single(body)]
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            return None
    if not items or len(items) > MAX_EVENTS:
        return None
    scan = needs_scan(body)
    # msgspec decoded the data: its own sorted encoding gives the same hash, cheaper.
    return _collect(_finish(index, item, data_check, record_hash_of_decoded, scan) for index, item in enumerate(items))


def _collect(checked: Iterable[tuple[Event | None, list[dict[str, Any]]]]) -> Batch:
    batch = Batch()
    first_index: dict[str, int] = {}
    for index, (event, errors) in enumerate(checked):
        if errors:
            batch.errors.extend(errors)
            continue
        assert event is not None
        if event.id in first_index:
            batch.errors.append({"index": index, "message": f"id {event.id!r} repeats event {first_index[event.id]}"})
            continue
        first_index[event.id] = index
        batch.events.append(event)
    return batch
