"""One poll of a `rest` source: page the since-query from the watermark, commit, count what push missed.

Called by the PollingEngine (engines/polling.py) under the source's lease,
after its circuit breaker let the call through; the engine records the
outcome (PollRun, schedule, failures). Steps:

1. Ask from the watermark minus `overlap_s` (`since_param`); without a
   watermark (the first poll) the whole listing is read.
2. The first page is conditional when the same request was answered
   before with an ETag and fit in one page: a 304 means nothing changed,
   and the poll ends there.
3. Each page's records are mapped and validated like a push (id
   `<key>:<version>`) and committed through the one commit path (origin
   `poll`) via `commit`; records re-fetched (the overlap, records push
   delivered) fold as duplicates or stale versions.
4. Each change the commit made is a miss when its since time is past the
   push grace and not older than the source (`rest_paging.is_missed`).
5. Paging stops at the last page, the page budget, the time budget, a
   closed rate-limit window (`X-RateLimit-Remaining: 0`), or a failure.
6. The watermark moves to the highest since time seen where that is safe
   (`rest_paging.next_watermark`).

The watermark and the ETag live in `Source.poll_state["rest"]` (`RestMemory`),
beside the scheduler's interval, written when the poll ends.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from engines.connectors import UpstreamError
from engines.ingest.commit import BatchResult
from engines.ingest.validation import Event
from engines.rest import (
    RateLimitClosedError,
    fetch_listing_page,
    first_request,
    host_of,
    page_events,
    poll_listing,
)
from engines.rest_paging import is_missed, microseconds_to_datetime, next_watermark, since_value
from engines.schemas import RestConnectorConfig

# Keys of the records found missed, kept in the poll run's details.
MISSED_SAMPLE = 20


@dataclass(frozen=True)
class RestMemory:
    """What a rest source's polls remember: the watermark (epoch µs) and the last single-page answer's ETag."""

    watermark_us: int | None = None
    etag: str | None = None
    etag_for: str | None = None  # the request (URL with params) the ETag answered

    def to_dict(self) -> dict[str, Any]:
        return {"watermark_us": self.watermark_us, "etag": self.etag, "etag_for": self.etag_for}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> RestMemory:
        data = data or {}
        watermark = data.get("watermark_us")
        return cls(
            watermark_us=int(watermark)
            if isinstance(watermark, int | float) and not isinstance(watermark, bool)
            else None,
            etag=str(data["etag"]) if data.get("etag") else None,
            etag_for=str(data["etag_for"]) if data.get("etag_for") else None,
        )


@dataclass
class RestProgress:
    """What a rest poll did; `memory` is what the next poll starts from."""

    memory: RestMemory
    since: str | None = None
    pages: int = 0
    not_modified: int = 0
    events: int = 0
    new_events: int = 0
    duplicates: int = 0
    changes: int = 0
    missed: int = 0
    missed_keys: list[str] = field(default_factory=list)
    has_more: bool = True
    http_status: int | None = None
    source_gone: bool = False
    rate_limit_wait_s: float | None = None
    rate_limit_waits: int = 0
    seen_max_us: int | None = None
    ascending: bool = True
    _last_since_us: int | None = None

    @property
    def compared(self) -> bool:
        """Did the poll compare anything with the upstream (a page read, or a 304)?"""
        return self.pages > 0 or self.not_modified > 0

    def details(self, *, before: RestMemory) -> dict[str, Any]:
        """The poll run's `details`: watermarks, pages, 304s, rate-limit waits, missed keys."""
        return {
            "watermark_from": _iso(before.watermark_us),
            "watermark_to": _iso(self.memory.watermark_us),
            "since": self.since,
            "pages": self.pages,
            "not_modified": self.not_modified,
            "rate_limit_waits": self.rate_limit_waits,
            "rate_limit_wait_s": None if self.rate_limit_wait_s is None else round(self.rate_limit_wait_s, 3),
            "listing_in_since_order": self.ascending,
            "missed_keys": list(self.missed_keys),
        }


def _iso(value: int | None) -> str | None:
    return None if value is None else microseconds_to_datetime(value).isoformat()


def rest_page_through(
    *,
    config: RestConnectorConfig,
    memory: RestMemory,
    page_budget: int,
    deadline: float,
    data_check: Callable[[dict[str, Any]], str | None] | None,
    commit: Callable[[list[Event]], BatchResult],
    now_us: Callable[[], int],
    watching_since_us: int,
    grace_s: float,
) -> tuple[RestProgress, UpstreamError | None]:
    """Page the since-query (steps in the module docstring). Upstream failures are returned, not raised.

    `deadline` is on the monotonic clock; `now_us` gives the wall clock
    (epoch µs) when a page's changes are committed, the time they count as
    received; `watching_since_us` is when the source was created.
    """
    host = host_of(config)
    since = since_value(memory.watermark_us, overlap_s=config.overlap_s, style=config.since_format)
    listing = poll_listing(config, since=since)
    progress = RestProgress(memory=memory, since=since)
    request = first_request(config, listing)
    first = request.spelled()
    etag = memory.etag if memory.etag and memory.etag_for == first else None
    error: UpstreamError | None = None
    new_etag: tuple[str | None, str | None] = (memory.etag, memory.etag_for)
    try:
        while progress.pages < page_budget and not progress.source_gone:
            if progress.pages and time.monotonic() + config.timeout_s > deadline:
                break  # the next page might not end in time; the next poll continues
            try:
                page = fetch_listing_page(config, listing, request, etag=etag if request.number == 0 else None)
            except RateLimitClosedError as closed:
                progress.rate_limit_waits += 1
                progress.rate_limit_wait_s = closed.wait_s()
                break
            progress.http_status = page.http_status
            if page.not_modified:
                progress.not_modified += 1
                progress.has_more = False
                _note_wait(progress, page.rate_limit_wait_s)
                break
            checked = page_events(page, listing, host=host, data_check=data_check)
            events = checked.batch.events
            received_us = now_us()
            result = commit(events) if events else BatchResult()
            for change in result.changes:
                since_us = checked.since.get(change["event_id"])
                if is_missed(since_us, received_us=received_us, grace_s=grace_s, watching_since_us=watching_since_us):
                    progress.missed += 1
                    if len(progress.missed_keys) < MISSED_SAMPLE:
                        progress.missed_keys.append(change["key"])
            for event in events:
                _see(progress, checked.since.get(event.id))
            progress.pages += 1
            progress.events += len(events)
            progress.new_events += result.accepted
            progress.duplicates += result.duplicates
            progress.changes += len(result.changes)
            progress.source_gone = result.source_missing
            if request.number == 0:
                # Only an answer that was the whole listing says "nothing changed" when it comes back as 304.
                new_etag = (page.etag, first) if page.next is None and page.etag else (None, None)
            progress.has_more = page.next is not None
            if page.rate_limit_wait_s is not None:
                _note_wait(progress, page.rate_limit_wait_s)
                break  # the window closed with this answer: not one call more before the reset
            if page.next is None:
                break
            request = page.next
    except UpstreamError as exc:
        error = exc
        progress.http_status = exc.http_status
    watermark = next_watermark(
        memory.watermark_us, progress.seen_max_us, finished=not progress.has_more, ascending=progress.ascending
    )
    progress.memory = replace(memory, watermark_us=watermark, etag=new_etag[0], etag_for=new_etag[1])
    return progress, error


def _see(progress: RestProgress, since_us: int | None) -> None:
    if since_us is None:
        return
    if progress._last_since_us is not None and since_us < progress._last_since_us:
        progress.ascending = False
    progress._last_since_us = since_us
    progress.seen_max_us = since_us if progress.seen_max_us is None else max(progress.seen_max_us, since_us)


def _note_wait(progress: RestProgress, wait_s: float | None) -> None:
    if wait_s is None:
        return
    progress.rate_limit_waits += 1
    progress.rate_limit_wait_s = wait_s
