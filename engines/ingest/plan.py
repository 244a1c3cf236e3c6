"""Which events change which records: pure decision over plain data.

A change is a record state transition: an upsert with a version newer than
the key's current one, or a delete of a live record with a newer version.
Stale and duplicate events are kept in the event log but change nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from engines.ingest.hashing import canonical_json, record_hash
from engines.ingest.validation import Event

__all__ = ["Current", "Plan", "RecordWrite", "canonical_json", "plan", "record_hash"]


# NamedTuples: the commit path builds one or two per event.
class Current(NamedTuple):
    version: int
    deleted: bool


class RecordWrite(NamedTuple):
    key: str
    version: int
    data: dict[str, Any] | None
    hash: str
    deleted: bool
    change_index: int  # position of the change that produced this state in Plan.changes


@dataclass(frozen=True)
class Plan:
    changes: list[Event]
    writes: list[RecordWrite]
    stale: int


def plan(events: Iterable[Event], current: Mapping[str, Current]) -> Plan:
    """Walk the events in arrival order, keeping each key's running state.

    Steps: skip heartbeats; an event whose version is not above the key's
    running version is stale; a delete of an absent or already-deleted key
    records the tombstone's version (so an older upsert arriving later stays
    stale) but is not a change; everything else is a change and moves the
    running state. Each key's final state is one record write.
    """
    running: dict[str, Current] = dict(current)
    changes: list[Event] = []
    finals: dict[str, RecordWrite] = {}
    stale = 0
    for event in events:
        if event.type == "heartbeat":
            continue
        state = running.get(event.key)
        if state is not None and event.version <= state.version:
            stale += 1
            continue
        if event.type == "delete":
            live = state is not None and not state.deleted
            running[event.key] = Current(version=event.version, deleted=True)
            index = len(changes) if live else -1
            if live:
                changes.append(event)
            finals[event.key] = RecordWrite(event.key, event.version, None, "", True, index)
            continue
        running[event.key] = Current(version=event.version, deleted=False)
        finals[event.key] = RecordWrite(
            event.key, event.version, event.data, event.hash or record_hash(event.data), False, len(changes)
        )
        changes.append(event)
    return Plan(changes=changes, writes=list(finals.values()), stale=stale)
