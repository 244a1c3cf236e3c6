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
   (`rest_paging.next_watermark`). A listing not in since order (Stripe's
   events come newest first) that was cut short keeps its watermark and
   remembers where it stopped: the next poll resumes that pass instead of
   reading its first pages again, and the watermark moves when the pass
   reaches its end.

The watermark, the ETag and an unfinished pass live in
`Source.poll_state["rest"]` (`RestMemory`), beside the scheduler's interval,
written when the poll ends.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from engines.connectors.http import UpstreamError
from engines.connectors.rest import (
    Listing,
    ListingPage,
    PageRequest,
    RateLimitClosedError,
    fetch_listing_page,
    first_request,
    host_of,
    page_events,
    poll_listing,
)
from engines.connectors.rest_paging import is_missed, microseconds_to_datetime, next_watermark, since_value
from engines.ingest.commit import BatchResult
from engines.ingest.validation import Event
from engines.schemas import RestConnectorConfig

# Keys of the records found missed, kept in the poll run's details.
MISSED_SAMPLE = 20


@dataclass(frozen=True)
class RestMemory:
    """What a rest source's polls remember between polls.

    `watermark_us`: the highest since time (epoch µs) safely read up to;
    `etag` / `etag_for`: the ETag of the last single-page answer and the
    request it answered; `resume` / `pending_us`: where an unfinished pass of
    a listing not in since order stopped, and the highest since time it saw.
    """

    watermark_us: int | None = None
    etag: str | None = None
    etag_for: str | None = None
    resume: PageRequest | None = None
    pending_us: int | None = None

    def to_dict(self) -> dict[str, Any]:
        resume = self.resume
        return {
            "watermark_us": self.watermark_us,
            "etag": self.etag,
            "etag_for": self.etag_for,
            "resume": None if resume is None else {"url": resume.url, "params": resume.params, "number": resume.number},
            "pending_us": self.pending_us,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> RestMemory:
        data = data or {}
        raw = data.get("resume")
        resume = None
        if isinstance(raw, dict) and isinstance(raw.get("url"), str):
            params = raw.get("params")
            resume = PageRequest(
                url=raw["url"],
                params={str(k): str(v) for k, v in params.items()} if isinstance(params, dict) else None,
                number=_int(raw.get("number")) or 0,
            )
        return cls(
            watermark_us=_int(data.get("watermark_us")),
            etag=str(data["etag"]) if data.get("etag") else None,
            etag_for=str(data["etag_for"]) if data.get("etag_for") else None,
            resume=resume,
            pending_us=_int(data.get("pending_us")),
        )


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


@dataclass
class RestProgress:
    """What a rest poll did; `memory` is what the next poll starts from."""

    memory: RestMemory
    since: str | None = None
    resumed: bool = False
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
    rising: bool = False
    last_since_us: int | None = None

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
            "resumed": self.resumed,
            "pass_unfinished": self.memory.resume is not None,
            "pages": self.pages,
            "not_modified": self.not_modified,
            "rate_limit_waits": self.rate_limit_waits,
            "rate_limit_wait_s": None if self.rate_limit_wait_s is None else round(self.rate_limit_wait_s, 3),
            "listing_in_since_order": self.in_since_order,
            "missed_keys": list(self.missed_keys),
        }

    @property
    def in_since_order(self) -> bool:
        """Seen rising by the since field and never falling (equal times alone prove no order)."""
        return self.ascending and self.rising and not self.resumed

    def see(self, since_us: int | None) -> None:
        if since_us is None:
            return
        if self.last_since_us is not None and since_us < self.last_since_us:
            self.ascending = False
        if self.last_since_us is not None and since_us > self.last_since_us:
            self.rising = True
        self.last_since_us = since_us
        self.seen_max_us = since_us if self.seen_max_us is None else max(self.seen_max_us, since_us)

    def wait(self, wait_s: float) -> None:
        self.rate_limit_waits += 1
        self.rate_limit_wait_s = wait_s


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
    start = first_request(config, listing)
    etag = memory.etag if memory.etag and memory.etag_for == start.spelled() else None
    new_etag: tuple[str | None, str | None] = (memory.etag, memory.etag_for)
    pending: PageRequest | None = start  # the next page to fetch
    if memory.resume is not None:  # an unfinished pass of a listing out of since order goes on
        pending, etag = memory.resume, None
        progress.resumed, progress.ascending, progress.seen_max_us = True, False, memory.pending_us
        # The pass goes on with the since it started with (in its params; a Link carries it in the URL).
        progress.since = (memory.resume.params or {}).get(config.since_param or "", progress.since)
    error: UpstreamError | None = None
    try:
        while pending is not None and progress.pages < page_budget and not progress.source_gone:
            if progress.pages and time.monotonic() + config.timeout_s > deadline:
                break  # the next page might not end in time; the next poll continues
            request = pending
            conditional = etag if request is start else None
            try:
                page = fetch_listing_page(config, listing, request, etag=conditional)
            except RateLimitClosedError as closed:
                progress.wait(closed.wait_s())
                break
            progress.http_status = page.http_status
            if page.not_modified:
                progress.not_modified += 1
                pending = None
            else:
                _take(
                    progress,
                    page,
                    listing,
                    host=host,
                    data_check=data_check,
                    commit=commit,
                    now_us=now_us,
                    watching_since_us=watching_since_us,
                    grace_s=grace_s,
                )
                if request is start:
                    # Only an answer that was the whole listing says "nothing changed" when it comes back as 304.
                    new_etag = (page.etag, start.spelled()) if page.next is None and page.etag else (None, None)
                pending = page.next
            if page.rate_limit_wait_s is not None:
                progress.wait(page.rate_limit_wait_s)
                break  # the window closed with this answer: not one call more before the reset
    except UpstreamError as exc:
        error = exc
        progress.http_status = exc.http_status
    progress.has_more = pending is not None
    watermark, resume = _after_pass(config, memory, progress, pending=pending, failed=error is not None)
    progress.memory = RestMemory(
        watermark_us=watermark,
        etag=new_etag[0],
        etag_for=new_etag[1],
        resume=resume,
        pending_us=progress.seen_max_us if resume is not None else None,
    )
    return progress, error


def _after_pass(
    config: RestConnectorConfig,
    memory: RestMemory,
    progress: RestProgress,
    *,
    pending: PageRequest | None,
    failed: bool,
) -> tuple[int | None, PageRequest | None]:
    """The next watermark, and where the next poll resumes (None: a fresh since-query).

    - The listing read to its end: the watermark moves to the highest since seen.
    - Cut short in a listing seen in since order (rising, never falling): the
      watermark moves there too, and the next since-query starts behind it,
      unless that would be this very query again (a run of equal since times
      longer than the budget): then the pass resumes instead.
    - Cut short otherwise (newest first, or nothing but equal times): the
      watermark stays and the pass resumes where it stopped (a cursor or a
      Link). A resumed pass whose first request failed starts over: its
      cursor may be gone upstream.
    """
    if pending is None:
        return next_watermark(memory.watermark_us, progress.seen_max_us, finished=True, ascending=True), None
    if failed and progress.resumed and not progress.pages:
        return memory.watermark_us, None
    if progress.in_since_order:
        moved = next_watermark(memory.watermark_us, progress.seen_max_us, finished=False, ascending=True)
        asks_again = since_value(moved, overlap_s=config.overlap_s, style=config.since_format) == progress.since
        if not asks_again:
            return moved, None
    return memory.watermark_us, pending


def _take(
    progress: RestProgress,
    page: ListingPage,
    listing: Listing,
    *,
    host: str,
    data_check: Callable[[dict[str, Any]], str | None] | None,
    commit: Callable[[list[Event]], BatchResult],
    now_us: Callable[[], int],
    watching_since_us: int,
    grace_s: float,
) -> None:
    """Validate and commit one page; count its changes and those push had missed."""
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
        progress.see(checked.since.get(event.id))
    progress.pages += 1
    progress.events += len(events)
    progress.new_events += result.accepted
    progress.duplicates += result.duplicates
    progress.changes += len(result.changes)
    progress.source_gone = result.source_missing
