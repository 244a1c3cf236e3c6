"""The simulated upstream's truth: a keyed, versioned dataset and its change log.

Pure: no I/O, no clock except the injectable one for `occurred_at`. Every
public method takes one lock, because tests mutate the dataset from their own
thread while the server reads it from the event loop's thread.

What the change log models (docs/contract.md §4 and §6):

- every visible mutation appends one event with the next `seq` (1, 2, 3, ...),
  so the feed is contiguous and `seq` = position in the log;
- a *silent* mutation changes the truth without any event: it shows in the
  snapshot and the digests only, never in the feed nor in pushes. The next
  visible change of that key still gets a higher version, as it would
  upstream;
- versions grow per key and survive deletion, so a key that comes back never
  reuses a version;
- every change also gets a whole-second timestamp (`updated_s`) that grows
  strictly per key, and every record the second it was created
  (`created_s`): what the real-shaped profiles (simulator/profiles)
  render as GitHub's `updated_at` or Stripe's event `created`. Real upstreams
  stamp to the second, so two changes of one issue within a second would
  tie; the simulator moves the second one a second on, so that a version
  read from the timestamp always grows.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import hashlib
import json
import random
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

Event = dict[str, Any]

MAX_PAGE = 1000
_STATUSES = ("new", "paid", "shipped", "cancelled")
# Non-ASCII on purpose: the record hash must use ensure_ascii=False.
_NOTES = ("", "rush", "gift wrap", "café au lait", "Straße 7", "東京")


def canonical_json(data: object) -> str:
    """docs/contract.md §5: the only serialisation a record hash may be computed from."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def record_hash(data: object) -> str:
    return hashlib.sha256(canonical_json(data).encode("utf-8")).hexdigest()


def bucket_of(key: str) -> str:
    """docs/contract.md §6: the first two hex digits of sha256(key)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:2]


def sub_bucket_of(key: str) -> str:
    """The first four hex digits of sha256(key): one of a bucket's 256 sub-buckets."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:4]


def all_buckets() -> list[str]:
    return [f"{i:02x}" for i in range(256)]


def encode_page_token(key: str) -> str:
    # Opaque to clients, URL-safe, and stable under concurrent mutation: the
    # next page starts after this key whatever was inserted or deleted since.
    return base64.urlsafe_b64encode(key.encode("utf-8")).decode("ascii").rstrip("=")


def decode_page_token(token: str) -> str:
    try:
        raw = base64.b64decode(token + "=" * (-len(token) % 4), altchars=b"-_", validate=True)
        return raw.decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise ValueError("invalid page_token") from exc


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Record:
    key: str
    version: int
    data: dict[str, Any]
    hash: str
    created_s: int = 0  # unix seconds: when the key was (last) created
    updated_s: int = 0  # unix seconds of this version, strictly growing per key

    def as_snapshot_item(self) -> dict[str, Any]:
        return {"key": self.key, "version": self.version, "data": self.data}


@dataclass(frozen=True, slots=True)
class Change:
    """One applied mutation; `event` is None when it was silent."""

    key: str
    type: str  # "upsert" | "delete"
    version: int
    silent: bool
    event: Event | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "type": self.type,
            "version": self.version,
            "silent": self.silent,
            "seq": None if self.event is None else self.event["seq"],
        }


@dataclass(frozen=True, slots=True)
class ChangeMeta:
    """What a change log entry does not carry but a real-shaped rendering needs.

    `prior` is the record as it was before the change (None when the key was
    absent): a delete's last state, an edit's old values.
    """

    created_s: int
    updated_s: int
    prior: Record | None


class Dataset:
    """Keyed records with versions, a change log, snapshot pages and bucket digests."""

    def __init__(
        self,
        *,
        seed: int = 0,
        key_space: int = 1000,
        id_prefix: str = "evt",
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        if key_space < 1:
            raise ValueError("key_space must be >= 1")
        self.seed = seed
        self.key_space = key_space
        self.id_prefix = id_prefix
        # Public so a caller can hold time still: records seeded under a held
        # clock share one second however slow the machine is.
        self.clock = clock
        self._lock = threading.RLock()
        # A reset starts a new generation so event ids never repeat within a
        # run: the receiver dedups by id and would swallow a reused one.
        self.generation = 0
        self._init_state()

    def _init_state(self) -> None:
        self._rng = random.Random(f"{self.seed}:{self.generation}")
        self._records: dict[str, Record] = {}
        self._keys: list[str] = []  # sorted, for snapshot paging
        self._bucket_keys: dict[str, list[str]] = {}  # sorted per bucket
        self._digests: dict[str, str] = {}  # cache, dropped per bucket on change
        # Per bucket: its keys split by sub-bucket, each sorted. Built on
        # demand (sub-bucket digests and pages), dropped per bucket on change.
        self._children: dict[str, dict[str, list[str]]] = {}
        self._versions: dict[str, int] = {}  # last version ever issued, kept after delete
        self._stamps: dict[str, int] = {}  # last updated_s ever issued, kept after delete
        self._log: list[Event] = []  # seq = index + 1
        self._meta: list[ChangeMeta] = []  # parallel to _log
        self.silent_changes = 0

    # -- reads -----------------------------------------------------------------

    @property
    def head_seq(self) -> int:
        """The newest seq emitted (0 when none)."""
        with self._lock:
            return len(self._log)

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)

    def get(self, key: str) -> Record | None:
        with self._lock:
            return self._records.get(key)

    def records(self) -> list[Record]:
        with self._lock:
            return [self._records[k] for k in self._keys]

    def changes(self, *, after: int = 0, limit: int = 100) -> tuple[list[Event], bool]:
        """Events with seq > after, ascending, and whether more remain."""
        limit = _clamp_limit(limit)
        with self._lock:
            start = max(after, 0)
            page = self._log[start : start + limit]
            return list(page), start + limit < len(self._log)

    def meta(self, seq: int) -> ChangeMeta:
        """The stamps and prior state of change `seq`. Raises IndexError when there is none."""
        if seq < 1:
            raise IndexError(seq)
        with self._lock:
            return self._meta[seq - 1]

    def log_entries(self, *, after: int = 0) -> list[tuple[Event, ChangeMeta]]:
        """Every event with seq > after and its meta, ascending."""
        with self._lock:
            start = max(after, 0)
            return list(zip(self._log[start:], self._meta[start:], strict=True))

    def snapshot_page(
        self, *, page_token: str | None = None, limit: int = 100, bucket: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of the current records in key order, and the next token or None.

        `bucket` is a bucket (two hex digits) or a sub-bucket (four). Raises
        ValueError for a bad token or bucket.
        """
        limit = _clamp_limit(limit)
        after = decode_page_token(page_token) if page_token else None
        if bucket is not None and not _is_prefix(bucket, (2, 4)):
            raise ValueError("bucket must be two or four lowercase hex digits")
        with self._lock:
            if bucket is None:
                keys = self._keys
            elif len(bucket) == 2:
                keys = self._bucket_keys.get(bucket, [])
            else:
                keys = self._sub_buckets(bucket[:2]).get(bucket, [])
            start = 0 if after is None else bisect.bisect_right(keys, after)
            chosen = keys[start : start + limit]
            items = [self._records[k].as_snapshot_item() for k in chosen]
            more = start + limit < len(keys)
            return items, (encode_page_token(chosen[-1]) if more and chosen else None)

    def digests(self, bucket: str | None = None) -> dict[str, str]:
        """docs/contract.md §6 digest of every bucket, "00".."ff".

        With `bucket`, the digests of its 256 sub-buckets ("ab00".."abff"),
        same line format: what lets a reconciler narrow a differing bucket
        down to the few records that differ. Raises ValueError for a bad bucket.
        """
        if bucket is None:
            with self._lock:
                return {b: self._bucket_digest(b) for b in all_buckets()}
        if not _is_prefix(bucket, (2,)):
            raise ValueError("bucket must be two lowercase hex digits")
        with self._lock:
            children = self._sub_buckets(bucket)
            return {f"{bucket}{b}": self._lines_digest(children.get(f"{bucket}{b}", ())) for b in all_buckets()}

    def _bucket_digest(self, bucket: str) -> str:
        cached = self._digests.get(bucket)
        if cached is not None:
            return cached
        digest = self._lines_digest(self._bucket_keys.get(bucket, ()))
        self._digests[bucket] = digest
        return digest

    def _lines_digest(self, keys: Iterable[str]) -> str:
        h = hashlib.sha256()
        for key in keys:  # already sorted by key
            rec = self._records[key]
            h.update(f"{rec.key}\t{rec.version}\t{rec.hash}\n".encode())
        return h.hexdigest()

    def _sub_buckets(self, bucket: str) -> dict[str, list[str]]:
        children = self._children.get(bucket)
        if children is None:
            children = {}
            for key in self._bucket_keys.get(bucket, ()):  # sorted, so each child list is too
                children.setdefault(sub_bucket_of(key), []).append(key)
            self._children[bucket] = children
        return children

    # -- writes ----------------------------------------------------------------

    def upsert(self, key: str, data: dict[str, Any], *, silent: bool = False) -> Change:
        with self._lock:
            version = self._versions.get(key, 0) + 1
            self._versions[key] = version
            prior = self._records.get(key)
            if prior is None:
                self._index_add(key)
            updated_s = self._stamp(key)
            created_s = updated_s if prior is None else prior.created_s
            self._records[key] = Record(key, version, data, record_hash(data), created_s, updated_s)
            self._forget_digests(key)
            event = None
            if silent:
                self.silent_changes += 1
            else:
                event = self._append(
                    {"type": "upsert", "key": key, "version": version, "data": data},
                    ChangeMeta(created_s, updated_s, prior),
                )
            return Change(key, "upsert", version, silent, event)

    def delete(self, key: str, *, silent: bool = False) -> Change:
        """Delete a present record. Raises KeyError when it is absent."""
        with self._lock:
            if key not in self._records:
                raise KeyError(key)
            version = self._versions[key] + 1
            self._versions[key] = version
            prior = self._records.pop(key)
            updated_s = self._stamp(key)
            self._index_remove(key)
            self._forget_digests(key)
            event = None
            if silent:
                self.silent_changes += 1
            else:
                event = self._append(
                    {"type": "delete", "key": key, "version": version},
                    ChangeMeta(prior.created_s, updated_s, prior),
                )
            return Change(key, "delete", version, silent, event)

    def mutate_random(self, *, delete: bool = False, silent: bool = False) -> Change:
        """A seeded random change: an upsert of a key from the key space, or a
        delete of a present key (an upsert when nothing is left to delete)."""
        with self._lock:
            if delete and self._keys:
                return self.delete(self._rng.choice(self._keys), silent=silent)
            key = _key_name(self._rng.randrange(self.key_space))
            return self.upsert(key, self._random_data(), silent=silent)

    def seed_records(self, count: int, *, emit: bool = True) -> list[Change]:
        """Fill `count` distinct keys (up to the key space), as events or silently."""
        with self._lock:
            free = [k for k in (_key_name(i) for i in range(self.key_space)) if k not in self._records]
            return [self.upsert(k, self._random_data(), silent=not emit) for k in free[:count]]

    def reset(self) -> None:
        """Empty everything and start a new generation (fresh event ids, seq from 1)."""
        with self._lock:
            self.generation += 1
            self._init_state()

    # -- internals -------------------------------------------------------------

    def _append(self, body: Event, meta: ChangeMeta) -> Event:
        seq = len(self._log) + 1
        event: Event = {
            "id": f"{self.id_prefix}_{self.generation}_{seq}",
            **body,
            "seq": seq,
            "occurred_at": _iso(self.clock()),
        }
        self._log.append(event)
        self._meta.append(meta)
        return event

    def _stamp(self, key: str) -> int:
        """This change's whole second: now, or one past the key's last when that is not earlier."""
        stamp = max(int(self.clock().timestamp()), self._stamps.get(key, 0) + 1)
        self._stamps[key] = stamp
        return stamp

    def _forget_digests(self, key: str) -> None:
        bucket = bucket_of(key)
        self._digests.pop(bucket, None)
        self._children.pop(bucket, None)

    def _index_add(self, key: str) -> None:
        bisect.insort(self._keys, key)
        bisect.insort(self._bucket_keys.setdefault(bucket_of(key), []), key)

    def _index_remove(self, key: str) -> None:
        _remove_sorted(self._keys, key)
        _remove_sorted(self._bucket_keys[bucket_of(key)], key)

    def _random_data(self) -> dict[str, Any]:
        # Integers and strings only: floats would make the hash depend on how
        # the receiver stores and re-serialises them.
        rng = self._rng
        return {
            "status": rng.choice(_STATUSES),
            "qty": rng.randint(1, 20),
            "price_cents": rng.randint(100, 100_000),
            "note": rng.choice(_NOTES),
        }


_HEX = frozenset("0123456789abcdef")


def _is_prefix(value: str, lengths: tuple[int, ...]) -> bool:
    return len(value) in lengths and set(value) <= _HEX


def _key_name(index: int) -> str:
    return f"rec-{index:06d}"


def _remove_sorted(keys: list[str], key: str) -> None:
    i = bisect.bisect_left(keys, key)
    if i < len(keys) and keys[i] == key:
        del keys[i]


def _clamp_limit(limit: int) -> int:
    return max(1, min(limit, MAX_PAGE))
