"""The `rest` connector's pure parts: pages, watermarks, rate limits, record mapping.

No I/O and no ORM: `engines/connectors/rest.py` does the HTTP and the polling engine
the commits. Everything here works on plain values (header mappings, parsed
JSON bodies, epoch microseconds) so that it is tested without a server.

- `next_link`: the `rel="next"` target of a `Link` header (RFC 8288);
- `cursor_next`: the next cursor of a `cursor` listing, from its body;
- `since_value`, `since_of`, `next_watermark`: the since-watermark with its
  overlap, in the upstream's format (RFC 3339 or unix seconds);
- `rate_limit_wait`: how long `X-RateLimit-Remaining: 0` + `X-RateLimit-Reset`
  forbid calling;
- `map_record`, `event_id`, `raw_event`: a listed record as key, version,
  op, data and since time, and as the event a push would have been.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import quote

from engines.connectors.mapping import MappingError, key_of, op_of, parse_timestamp, search, to_microseconds, version_of

MAX_EVENT_ID = 255
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# One link-value of a Link header: <target> followed by its ;-parameters.
# A target may hold commas and semicolons (query strings do), the brackets delimit it.
_LINK = re.compile(r"<([^>]*)>((?:\s*;\s*[^;,]+)*)")
_LINK_PARAM = re.compile(r';\s*([^=;,\s]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;,\s]+)')


def parse_links(value: str | None) -> dict[str, str]:
    """rel -> target of every link-value in a `Link` header; the first target of a rel wins.

    `rel` may list several relation types (`rel="next last"`), each counts.
    Relation types are case-insensitive (RFC 8288 §2.1.1).
    """
    links: dict[str, str] = {}
    if not value:
        return links
    for match in _LINK.finditer(value):
        target, params = match.group(1).strip(), match.group(2)
        for name, raw in _LINK_PARAM.findall(params):
            if name.lower() != "rel":
                continue
            rels = raw[1:-1] if raw.startswith('"') else raw
            for rel in rels.lower().split():
                links.setdefault(rel, target)
    return links


def next_link(headers: Mapping[str, str]) -> str | None:
    """The `rel="next"` target of the response's `Link` header, or None on the last page."""
    return parse_links(headers.get("link")).get("next") or None


def cursor_next(body: Any, expression: str) -> str | None:
    """The cursor for the next page (`pagination.next` over the body); None when there is none.

    null, false, "" and an empty list all say "last page" (Stripe's
    `has_more && data[-1].id` gives false there). Numbers are sent as text.
    """
    value = search(expression, body)
    if value is None or value is False or value == "" or value == []:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise MappingError("pagination.next", f"a {type(value).__name__} is not a cursor")
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


def fill(template: str, values: Mapping[str, str], *, path: bool) -> str:
    """`{name}` placeholders filled from the config's extra fields; in a path each value is one segment."""
    quoted = {name: quote(value, safe="") if path else value for name, value in values.items()}
    return template.format_map(quoted)


# -- since watermark ---------------------------------------------------------------


def since_of(value: Any) -> int | None:
    """A record's since-field value as epoch microseconds, or None when it has none.

    RFC 3339 text (GitHub's `updated_at`) or unix seconds (Stripe's
    `created`, as a number or digits). Anything else is a mapping error:
    a watermark built on a misread field would skip records silently.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise MappingError("since_field", "a boolean is not a time")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            raise MappingError("since_field", f"{value!r} is not a unix time")
        return round(value * 1_000_000)
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return int(text) * 1_000_000
        try:
            return to_microseconds(parse_timestamp(text))
        except ValueError:
            raise MappingError("since_field", f"{value[:64]!r} is neither RFC 3339 nor unix seconds") from None
    raise MappingError("since_field", f"a {type(value).__name__} is not a time")


def since_value(watermark_us: int | None, *, overlap_s: float, style: Literal["rfc3339", "unix"]) -> str | None:
    """What `since_param` asks for: the watermark minus the overlap, rounded down to whole seconds.

    None without a watermark (the first poll reads the whole listing).
    Rounded down, never up: asking from a little earlier costs duplicates,
    which fold by id; asking from later would skip records.
    """
    if watermark_us is None:
        return None
    seconds = max(0, math.floor(watermark_us / 1_000_000 - overlap_s))
    if style == "unix":
        return str(seconds)
    return (_EPOCH + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def microseconds_to_datetime(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


def next_watermark(current: int | None, seen: int | None, *, finished: bool, ascending: bool) -> int | None:
    """Where the next poll asks from, after a poll that saw since-values up to `seen`.

    A listing read to its end, or one sorted by the since field ascending
    (every record before the highest seen has been seen), moves the
    watermark to the highest value seen. A poll that stopped early (page
    budget, rate limit, failure) in a listing not in since order keeps the
    old watermark: the records it did not reach may be older than those it
    saw. The watermark never moves back.
    """
    if seen is None or not (finished or ascending):
        return current
    return seen if current is None else max(current, seen)


# -- rate limits -------------------------------------------------------------------


def rate_limit_wait(headers: Mapping[str, str], *, now: float) -> float | None:
    """Seconds until `X-RateLimit-Reset` when `X-RateLimit-Remaining` is 0, else None.

    The reset is unix seconds (GitHub, Shopify's REST API leaky bucket
    aside). A remaining count of 0 without a readable reset gives 60 s:
    calling again at once would only be refused.
    """
    remaining = (headers.get("x-ratelimit-remaining") or "").strip()
    if remaining != "0":
        return None
    reset = (headers.get("x-ratelimit-reset") or "").strip()
    try:
        at = float(reset)
    except ValueError:
        return 60.0
    if not math.isfinite(at):
        return 60.0
    return max(0.0, at - now)


# -- record mapping ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecordMapping:
    """The record mapping of one listing (JMESPath on one record)."""

    key: str
    version: str
    op: str | None = None
    data: str | None = None
    since_field: str | None = None


@dataclass(frozen=True, slots=True)
class MappedRecord:
    key: str
    version: int
    op: str  # upsert | delete
    data: Any
    since_us: int | None


def records_of(body: Any, expression: str | None) -> list[Any]:
    """The listed records of a response body (`records` over it; None: the body is the list)."""
    found = body if expression is None else search(expression, body)
    if found is None:
        return []
    if not isinstance(found, list):
        raise MappingError("records", f"found a {type(found).__name__}, not a list")
    return found


def map_record(item: Any, mapping: RecordMapping) -> MappedRecord:
    """One listed record as a record of ours. Raises MappingError naming the mapping field."""
    key = key_of(search(mapping.key, item), field="key")
    version = version_of(search(mapping.version, item), field="version")
    op = op_of(search(mapping.op, item), field="op") if mapping.op else "upsert"
    data = item if mapping.data is None else search(mapping.data, item)
    if op == "upsert" and not isinstance(data, dict):
        raise MappingError("data", "an upsert needs an object" if data is not None else "found nothing")
    since = since_of(search(mapping.since_field, item)) if mapping.since_field else None
    return MappedRecord(key=key, version=version, op=op, data=data if op == "upsert" else None, since_us=since)


def event_id(key: str, version: int) -> str:
    """`<key>:<version>`; a key too long for an event id is replaced by `sha256:<hex of the key>`.

    The same record at the same version gets the same id on every poll, so
    re-fetching it (the overlap, a repeated page) folds as a duplicate.
    """
    candidate = f"{key}:{version}"
    if len(candidate) <= MAX_EVENT_ID:
        return candidate
    return f"sha256:{hashlib.sha256(key.encode('utf-8')).hexdigest()}:{version}"


def raw_event(record: MappedRecord) -> dict[str, Any]:
    """The event a push of this record would carry, for `engines.ingest.validation.validate`."""
    event: dict[str, Any] = {
        "id": event_id(record.key, record.version),
        "type": record.op,
        "key": record.key,
        "version": record.version,
    }
    if record.op == "upsert":
        event["data"] = record.data
    if record.since_us is not None:
        event["occurred_at"] = microseconds_to_datetime(record.since_us).isoformat()
    return event


def is_missed(since_us: int | None, *, received_us: int, grace_s: float, watching_since_us: int) -> bool:
    """Was a change a poll committed one that push should have delivered first?

    Only with a since time (when the upstream changed it) that is older than
    its arrival minus the grace a push in flight gets, and not older than
    the source itself: what changed before BeastFlow watched was never
    pushed to it (the first poll's backfill is not a miss).
    """
    if since_us is None:
        return False
    return watching_since_us <= since_us < received_us - round(grace_s * 1_000_000)
