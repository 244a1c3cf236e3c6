"""The flight recorder's buffer: a reader never misses judgements a flush in flight has taken."""

from __future__ import annotations

import threading

import pytest

from beastflow.redis_client import get_redis
from engines import flight


def test_a_reader_waits_for_the_flush_in_flight_instead_of_reading_around_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # given: one judgement buffered, and the background flush holding it, not written yet
    source_id = 9_900_001
    get_redis().delete(flight.source_key(source_id))
    flight.flush()
    flight.note(source_id=source_id, now=1_000.0, signals={}, mode="event", state=None, config={})
    original, taken, proceed = flight._buffer.take, threading.Event(), threading.Event()

    def held_take() -> dict[int, list[str]]:
        items = original()
        if items:
            taken.set()
            proceed.wait(10)
        return items

    monkeypatch.setattr(flight._buffer, "take", held_take)
    flusher = threading.Thread(target=flight.flush)
    flusher.start()
    assert taken.wait(10)
    # when: a recording reads the source's judgements meanwhile
    read: list[dict[str, object]] = []
    reader = threading.Thread(target=lambda: read.extend(flight.judgements(source_id, since=0, until=2_000)))
    reader.start()
    reader.join(timeout=0.5)
    waited = reader.is_alive()
    proceed.set()
    flusher.join(10)
    reader.join(10)
    # then: it waited for that flush and found the judgement
    assert waited
    assert [entry["t"] for entry in read] == [1_000.0]
    get_redis().delete(flight.source_key(source_id))
