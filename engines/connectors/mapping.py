"""JMESPath mappings from an upstream's own shapes to BeastFlow records. Pure.

Push mappings (a webhook request -> events) and the `rest` connector's
record mapping (a listed record -> key, version, op, data) share these
pieces: expressions compiled once and cached, and the reading of a
version, which real upstreams give as an integer or as a timestamp.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any

import jmespath
from jmespath.parser import ParsedResult

BIGINT_MAX = 2**63 - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class MappingError(ValueError):
    """A value the mapping produced that cannot be used; `field` names the mapping field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@functools.lru_cache(maxsize=4_096)
def compiled(expression: str) -> ParsedResult:
    """The compiled expression, once per process (expressions are validated when a source is saved)."""
    return jmespath.compile(expression)


def search(expression: str, document: Any) -> Any:
    return compiled(expression).search(document)


def parse_timestamp(value: str) -> datetime:
    """An RFC 3339 timestamp with its zone ('Z' or an offset). ValueError otherwise."""
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError("a timestamp needs a time zone")
    return parsed


def to_microseconds(moment: datetime) -> int:
    """Microseconds since the epoch, exactly (no float rounding)."""
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def version_of(value: Any, *, field: str = "version") -> int:
    """A record version: a non-negative integer, or an RFC 3339 timestamp as microseconds since the epoch.

    Integral strings ("42") count as integers: some upstreams quote them.
    Booleans and fractions are refused rather than guessed at.
    """
    if isinstance(value, bool):
        raise MappingError(field, "a boolean is not a version")
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
    elif isinstance(value, str):
        try:
            number = to_microseconds(parse_timestamp(value.strip()))
        except ValueError:
            raise MappingError(field, f"{value[:64]!r} is neither an integer nor an RFC 3339 timestamp") from None
    elif value is None:
        raise MappingError(field, "found nothing")
    else:
        raise MappingError(field, f"a {type(value).__name__} is not a version")
    if not 0 <= number <= BIGINT_MAX:
        raise MappingError(field, "out of range (0 .. 2^63-1)")
    return number


def key_of(value: Any, *, field: str = "key", max_length: int = 512) -> str:
    """A record key or event id: strings as they are, integers spelled in decimal."""
    if isinstance(value, bool) or value is None or not isinstance(value, str | int):
        raise MappingError(field, "found nothing" if value is None else f"a {type(value).__name__} is not a key")
    text = str(value)
    if not 1 <= len(text) <= max_length:
        raise MappingError(field, f"must be 1..{max_length} characters")
    return text


def op_of(value: Any, *, field: str = "op") -> str:
    """`upsert` (also when the expression found nothing) or `delete`."""
    if value is None:
        return "upsert"
    if value in ("upsert", "delete"):
        return str(value)
    raise MappingError(field, f"must be 'upsert' or 'delete', found {str(value)[:64]!r}")
