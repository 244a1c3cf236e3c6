"""An upstream's own webhook request -> events, by the source's push mapping. Pure.

A mapping (engines.schemas.PushMapping) is JMESPath over
`{"headers": {lower-cased name: value}, "body": <parsed JSON>}`, and `item`
too where `items` splits one request into several records. It is compiled
once per source (`PushProgram`, kept in the ingest path's SourceMeta) and
run on every request. The events it makes are the same `Event`s a batch of BeastFlow events
is validated into, record hash included, so they take the same commit path.

A request whose `filter` is falsy (JMESPath's falsy: null, false, "", [], {})
is ignored: answered 2xx, nothing stored. A request with any unusable item is
refused whole, every problem named by its mapping field (`push.mapping.key`)
and, under `items`, by the item's index. See docs/push.md.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

import msgspec
from jmespath.exceptions import JMESPathError
from jmespath.parser import ParsedResult

from engines.connectors import mapping as jm
from engines.ingest.hashing import record_hash, record_hash_of_decoded, record_hash_without_floats
from engines.ingest.validation import (
    MAX_DEPTH,
    MAX_EVENTS,
    MAX_ID_LEN,
    MAX_KEY_LEN,
    BodyError,
    DataCheck,
    Event,
    Hasher,
    event_content_problems,
    needs_scan,
)
from engines.schemas import PushMapping

FIELD = "push.mapping"
# Nodes that can make a value the request did not hold (a function's float, a
# literal's NaN): data from an expression holding one is hashed the reference
# way (engines/ingest/hashing.py says why the quick way needs decoded data).
_MAKERS = frozenset({"function_expression", "literal"})


class _Floats(threading.local):
    seen = 0
    infinite = 0  # beyond a double ("1e400"): msgspec would encode it as null, the canonical JSON as Infinity


_floats = _Floats()


def _float(text: str) -> float:
    # Floats are rare in webhook bodies (amounts are integers or strings), and
    # the only values whose hash needs a closer look (engines/ingest/hashing.py):
    # counted while decoding, so a body without any is hashed without a search.
    _floats.seen += 1
    value = float(text)
    if math.isinf(value):
        _floats.infinite += 1
    return value


_decode = msgspec.json.Decoder(float_hook=_float).decode


@dataclass
class Mapped:
    """What a request maps to: events, or ignored, or the errors that refuse it."""

    events: list[Event] = field(default_factory=list)
    ignored: bool = False
    errors: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Body:
    """A request body parsed for the mapping.

    `decoded`: msgspec parsed it (its encoding then hashes like the canonical
    JSON, see _MAKERS); `floats`: it held at least one float.
    """

    value: Any
    decoded: bool = True
    floats: bool = True
    # Whether events need the look for NUL, deep nesting and infinite numbers
    # (engines.ingest.validation.needs_scan); True when unknown.
    scan: bool = True


def parse_body(raw: bytes, content_type: str = "") -> Body:
    """The body as JSON; BodyError(400) when it is not.

    GitHub can be set to post `application/x-www-form-urlencoded` with the
    JSON in a `payload` field: taken too (the signature covers the raw body).
    """
    if "x-www-form-urlencoded" in content_type:
        payload = parse_qs(raw.decode("utf-8", "replace")).get("payload")
        if not payload:
            raise BodyError(400, "A form-encoded webhook must carry its JSON in a payload field.", _not_json())
        raw = payload[0].encode()
    seen, infinite = _floats.seen, _floats.infinite
    try:
        value = _decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:  # invalid UTF-8 is not JSON either
        raise BodyError(400, f"The body is not JSON: {exc}", _not_json()) from exc
    except RecursionError as exc:
        raise BodyError(
            422, f"The body nests deeper than {MAX_DEPTH} levels.", [{"field": "body", "message": "too deep"}]
        ) from exc
    finite = _floats.infinite == infinite
    return Body(value, decoded=finite, floats=_floats.seen != seen, scan=not finite or needs_scan(raw))


def _not_json() -> list[dict[str, Any]]:
    return [{"field": "body", "message": "not JSON"}]


def truthy(value: Any) -> bool:
    """JMESPath's truth: false, null and empty strings, lists and objects are false; every number is true."""
    if value is None or value is False:
        return False
    if isinstance(value, str | list | dict):
        return len(value) > 0
    return True


def _search(expression: ParsedResult, document: Any, name: str) -> Any:
    """The expression's value; a type error at run time (join() of a null) is the mapping's error, named."""
    try:
        return expression.search(document)
    except JMESPathError as exc:
        raise jm.MappingError(name, str(exc).replace("\n", " ")) from None


def _makes_values(node: Mapping[str, Any]) -> bool:
    return node.get("type") in _MAKERS or any(_makes_values(child) for child in node.get("children", ()))


class PushProgram:
    """A source's push mapping, compiled: `run(headers, body)` per request."""

    def __init__(self, spec: PushMapping, *, data_check: DataCheck | None = None) -> None:
        self.spec = spec
        self.data_check = data_check
        self.filter = _compiled(spec.filter)
        self.items = _compiled(spec.items)
        self.id = jm.compiled(spec.id)
        self.key = jm.compiled(spec.key)
        self.version = jm.compiled(spec.version)
        self.op = _compiled(spec.op)
        self.data = _compiled(spec.data)
        self.occurred_at = _compiled(spec.occurred_at)
        self._data_from_request = self.data is None or not _makes_values(self.data.parsed)

    def run(self, headers: Mapping[str, str], body: Body | Any) -> Mapped:
        """Events from one request (headers with lower-cased names); nothing raised for the request's faults."""
        parsed = body if isinstance(body, Body) else Body(body, decoded=False)
        document: dict[str, Any] = {"headers": headers, "body": parsed.value}
        try:
            if self.filter is not None and not truthy(_search(self.filter, document, "filter")):
                return Mapped(ignored=True)
            found = _search(self.items, document, "items") if self.items is not None else None
        except jm.MappingError as exc:
            return Mapped(errors=[{"field": f"{FIELD}.{exc.field}", "message": exc.message}])
        hasher = self._hasher(parsed)
        if self.items is None:
            event, errors = self._event(document, parsed.value, hasher, index=None, scan=parsed.scan)
            return Mapped(events=[event] if event is not None else [], errors=errors)
        if not isinstance(found, list):
            problem = "found nothing" if found is None else f"must give a list, gave a {_kind(found)}"
            return Mapped(errors=[{"field": f"{FIELD}.items", "message": problem}])
        if not found:
            return Mapped(ignored=True)  # nothing to take: like a filtered-out request
        if len(found) > MAX_EVENTS:
            message = f"gave {len(found)} records; one request carries at most {MAX_EVENTS}"
            return Mapped(errors=[{"field": f"{FIELD}.items", "message": message}])
        mapped = Mapped()
        first_index: dict[str, int] = {}
        for index, item in enumerate(found):
            document["item"] = item
            event, errors = self._event(document, item, hasher, index=index, scan=parsed.scan)
            if errors:
                mapped.errors.extend(errors)
                continue
            assert event is not None
            if event.id in first_index:
                message = f"{event.id!r} repeats item {first_index[event.id]}'s id"
                mapped.errors.append({"field": f"{FIELD}.id", "index": index, "message": message})
                continue
            first_index[event.id] = index
            mapped.events.append(event)
        if mapped.errors:
            mapped.events = []
        return mapped

    def _hasher(self, body: Body) -> Hasher:
        """The cheapest record hash that is exact for this request's data."""
        if not body.decoded or not self._data_from_request:
            return record_hash
        return record_hash_of_decoded if body.floats else record_hash_without_floats

    def _event(
        self, document: dict[str, Any], default_data: Any, hasher: Hasher, *, index: int | None, scan: bool = True
    ) -> tuple[Event | None, list[dict[str, Any]]]:
        errors: list[dict[str, Any]] = []

        def problem(exc: jm.MappingError) -> None:
            entry: dict[str, Any] = {"field": f"{FIELD}.{exc.field}", "message": exc.message}
            if index is not None:
                entry["index"] = index
            errors.append(entry)

        event_id = key = op = ""
        version = 0
        occurred_at = None
        try:
            event_id = jm.key_of(_search(self.id, document, "id"), field="id", max_length=MAX_ID_LEN)
        except jm.MappingError as exc:
            problem(exc)
        try:
            key = jm.key_of(_search(self.key, document, "key"), field="key", max_length=MAX_KEY_LEN)
        except jm.MappingError as exc:
            problem(exc)
        try:
            version = jm.version_of(_search(self.version, document, "version"), field="version")
        except jm.MappingError as exc:
            problem(exc)
        try:
            op = jm.op_of(_search(self.op, document, "op") if self.op is not None else None, field="op")
        except jm.MappingError as exc:
            problem(exc)
        if self.occurred_at is not None:
            try:
                occurred_at = _moment(_search(self.occurred_at, document, "occurred_at"))
            except jm.MappingError as exc:
                problem(exc)
        data = None
        if op == "upsert":
            try:
                data = _search(self.data, document, "data") if self.data is not None else default_data
            except jm.MappingError as exc:
                problem(exc)
                return None, errors
            if not isinstance(data, dict):
                problem(jm.MappingError("data", "found nothing" if data is None else f"a {_kind(data)}, not an object"))
            elif scan and (hostile := event_content_problems(None, None, data)):
                problem(jm.MappingError("data", hostile[0].removeprefix("data").lstrip(".:").strip()))
            elif self.data_check is not None:
                message = self.data_check(data)
                if message:
                    problem(jm.MappingError("data", f"does not match the source's schema: {message}"))
        for message in event_content_problems(event_id, key, None) if scan else []:
            field_name, _, text = message.partition(" ")
            problem(jm.MappingError(field_name, text))
        if errors:
            return None, errors
        return (
            Event(
                id=event_id,
                type=op,
                key=key,
                version=version,
                data=data,
                seq=None,
                occurred_at=occurred_at,
                hash=hasher(data) if data is not None else "",
            ),
            [],
        )


def _compiled(expression: str | None) -> ParsedResult | None:
    return jm.compiled(expression) if expression is not None else None


def _moment(value: Any) -> datetime | None:
    """occurred_at: an RFC 3339 timestamp, or unix seconds (Stripe's `created`); nothing found is None."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise jm.MappingError("occurred_at", "a boolean is not a time")
    if isinstance(value, int | float):
        try:
            return datetime.fromtimestamp(value, tz=UTC)
        except (OverflowError, OSError, ValueError):
            raise jm.MappingError("occurred_at", f"{value!r} is out of range as unix seconds") from None
    if isinstance(value, str):
        try:
            return jm.parse_timestamp(value.strip())
        except ValueError:
            raise jm.MappingError("occurred_at", f"{value[:64]!r} is not an RFC 3339 timestamp") from None
    raise jm.MappingError("occurred_at", f"a {_kind(value)} is not a time")


def _kind(value: Any) -> str:
    return {dict: "object", list: "list", str: "string", bool: "boolean", int: "number", float: "number"}.get(
        type(value), type(value).__name__
    )


def event_render(event: Event) -> dict[str, Any]:
    """An event as the mapping preview shows it (the shape of a BeastFlow event, with its record hash)."""
    return {
        "id": event.id,
        "type": event.type,
        "key": event.key,
        "version": event.version,
        "data": event.data,
        "occurred_at": event.occurred_at.isoformat().replace("+00:00", "Z") if event.occurred_at else None,
        "hash": event.hash or None,
    }
