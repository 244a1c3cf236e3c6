"""The record hash of docs/contract.md §5, in a module of its own (validation and planning both use it)."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import msgspec

# json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False),
# without building a new JSONEncoder on every call (dumps does, for non-default options).
_canonical = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_json(data: Any) -> str:
    return _canonical.encode(data)


def record_hash(data: Any) -> str:
    """docs/contract.md §5: sha256 of the canonical JSON of data, as UTF-8."""
    return hashlib.sha256(canonical_json(data).encode()).hexdigest()


_sorted_compact = msgspec.json.Encoder(order="sorted").encode
# Where msgspec's JSON may differ from json.dumps: floats that Python writes
# with an exponent (>= 1e16 or < 1e-4; msgspec writes "1e16", "0.00001").
# Two searches, not one alternation: on a 5 KB GitHub issue the regex
# alternation took 54 us, the single class 22 us and the substring 2 us.
_DIGIT_E = re.compile(rb"[0-9][eE]")
_SMALL = b"0.0000"


def record_hash_of_decoded(data: Any) -> str:
    """`record_hash` of data that msgspec decoded from JSON: the same digest, about three times cheaper.

    For such data (str keys; no NaN or infinity, which msgspec refuses to
    decode) msgspec's sorted compact encoding is byte for byte the canonical
    JSON, floats included: both write the shortest repr that round-trips.
    They differ only where Python uses an exponent; any encoding that might
    hold one (a digit followed by e, or 0.0000) is hashed the reference way,
    as is anything msgspec cannot encode. Never for data from elsewhere:
    Python's json module decodes NaN, which msgspec would encode as null.
    """
    try:
        text = _sorted_compact(data)
    except (TypeError, OverflowError, msgspec.EncodeError):
        return record_hash(data)
    if _SMALL in text or _DIGIT_E.search(text):
        return record_hash(data)
    return hashlib.sha256(text).hexdigest()


def record_hash_without_floats(data: Any) -> str:
    """`record_hash` of data that msgspec decoded from JSON holding no float at all: no search needed.

    Floats are the only values whose msgspec encoding can differ from the
    canonical JSON (see `record_hash_of_decoded`); the push mapping's decoder
    counts them (engines/connectors/push_mapping.py), so a body without any skips
    the search, which costs more than the hash itself on a large body.
    """
    try:
        return hashlib.sha256(_sorted_compact(data)).hexdigest()
    except (TypeError, OverflowError, msgspec.EncodeError):
        return record_hash(data)
