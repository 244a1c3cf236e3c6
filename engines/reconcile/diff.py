"""What a reconciliation compares, over plain data: no I/O, no ORM.

- `compare`: one upstream record against the local row of its key;
- `Tally`: the counts of a run's diff and bounded samples of its keys;
- bucket digests (docs/contract.md §6): which bucket a key is in, a digest set's
  root, which buckets differ;
- the events a correction becomes (ids, delete versions).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

# docs/contract.md §6: an empty bucket digests to sha256 of nothing.
EMPTY_DIGEST = hashlib.sha256(b"").hexdigest()
BUCKETS: tuple[str, ...] = tuple(f"{i:02x}" for i in range(256))
BUCKET_DIGITS = 2
SUB_BUCKET_DIGITS = 4
# Keys kept per kind of drift for the run, the failure and the healing action.
SAMPLE_KEYS = 20
MAX_EVENT_ID = 255


class Verdict(StrEnum):
    EQUAL = "equal"
    # Absent locally, or a local tombstone older than the upstream record: upsert.
    MISSING = "missing"
    # Live locally with an older version: upsert.
    CHANGED = "changed"
    # The local version is newer than the snapshot's: a change on its way
    # (a push that overtook the snapshot), never regressed.
    IN_FLIGHT = "in_flight"
    # Same version, different data. Versions cannot order the two, and a
    # correction at that version would be stale on the commit path: reported.
    CONFLICT = "conflict"


CORRECTED = frozenset({Verdict.MISSING, Verdict.CHANGED})


@dataclass(frozen=True, slots=True)
class LocalRow:
    version: int
    hash: str
    deleted: bool


def compare(version: int, record_hash: str, local: LocalRow | None) -> Verdict:
    """The verdict on one upstream record (`version`, `record_hash`) given the local row of its key."""
    if local is None:
        return Verdict.MISSING
    if local.version > version:
        return Verdict.IN_FLIGHT
    if local.deleted:
        # A tombstone at the upstream's version: deleted here, present there.
        return Verdict.MISSING if local.version < version else Verdict.CONFLICT
    if local.version < version:
        return Verdict.CHANGED
    return Verdict.EQUAL if local.hash == record_hash else Verdict.CONFLICT


@dataclass
class Tally:
    """A run's diff so far: counts per kind, and the first keys of each kind."""

    upstream: int = 0
    local: int = 0
    missing: int = 0
    changed: int = 0
    deleted: int = 0
    in_flight: int = 0
    conflicts: int = 0
    samples: dict[str, list[str]] = field(default_factory=dict)

    def add(self, verdict: Verdict, key: str) -> None:
        if verdict is Verdict.EQUAL:
            return
        name = {Verdict.CONFLICT: "conflicts"}.get(verdict, verdict.value)
        setattr(self, name, getattr(self, name) + 1)
        self.sample(name, [key])

    def sample(self, kind: str, keys: Iterable[str]) -> None:
        for key in keys:
            kept = self.samples.setdefault(kind, [])
            if len(kept) >= SAMPLE_KEYS:
                return
            kept.append(key)

    @property
    def drift(self) -> int:
        return self.missing + self.changed + self.deleted

    @property
    def destructive(self) -> int:
        """Corrections that overwrite or remove local data (the safety cap's measure)."""
        return self.changed + self.deleted

    @property
    def change_ratio(self) -> float:
        return self.destructive / self.local if self.local else 0.0

    def counts(self) -> dict[str, int]:
        return {
            "upstream_count": self.upstream,
            "local_count": self.local,
            "missing": self.missing,
            "changed": self.changed,
            "deleted": self.deleted,
            "in_flight": self.in_flight,
            "conflicts": self.conflicts,
        }


def bucket_of(key: str, digits: int = BUCKET_DIGITS) -> str:
    """docs/contract.md §6: the first hex digits of sha256(key) (2: bucket, 4: sub-bucket)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:digits]


def digest_line(key: str, version: int, record_hash: str) -> str:
    return f"{key}\t{version}\t{record_hash}\n"


def bucket_digest(lines: Iterable[tuple[str, int, str]]) -> str:
    """sha256 of the records' lines sorted by key (code point order, as UTF-8 bytes sort)."""
    h = hashlib.sha256()
    for key, version, record_hash in sorted(lines):
        h.update(digest_line(key, version, record_hash).encode("utf-8"))
    return h.hexdigest()


def digest_root(digests: Mapping[str, str]) -> str:
    """One hash over a full set of bucket digests: equal roots, equal data."""
    return hashlib.sha256("".join(digests[name] for name in sorted(digests)).encode("ascii")).hexdigest()


def children(bucket: str) -> list[str]:
    return [f"{bucket}{child}" for child in BUCKETS]


def differing(upstream: Mapping[str, str], local: Mapping[str, str]) -> list[str]:
    """The buckets of `upstream` whose local digest differs (a bucket absent locally is empty)."""
    return [name for name in sorted(upstream) if upstream[name] != local.get(name, EMPTY_DIGEST)]


def correction_event_id(run_id: int, key: str, version: int) -> str:
    """`reconcile:<run>:<version>:<key>`; a key too long for an event id is replaced by its sha256."""
    event_id = f"reconcile:{run_id}:{version}:{key}"
    if len(event_id) <= MAX_EVENT_ID:
        return event_id
    return f"reconcile:{run_id}:{version}:sha256:{hashlib.sha256(key.encode('utf-8')).hexdigest()}"


def delete_version(local_version: int) -> int:
    """The version of the delete of a key gone upstream.

    One above ours: newer than what we hold, and never above the upstream's
    own delete (which came after the version we hold), so a later push of
    the key's next life still applies.
    """
    return local_version + 1


def summary(tally: Tally, **extra: Any) -> dict[str, Any]:
    """The diff as the run, the drift failure and the healing action show it."""
    return {
        **tally.counts(),
        "change_ratio": round(tally.change_ratio, 6),
        "samples": {kind: list(keys) for kind, keys in sorted(tally.samples.items())},
        **extra,
    }
