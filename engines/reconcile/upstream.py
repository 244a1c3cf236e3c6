"""The upstream side of a reconciliation: snapshot pages and bucket digests.

`snapshot_pages` walks a snapshot (or one bucket of it) page by page. For a
whole snapshot it fetches the next page on a thread while the caller
compares the current one, so the network and the database work overlap;
at most two pages are in memory, whatever the snapshot's size.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from engines.connectors.http import ErrorKind, SnapshotPage, UpstreamError, fetch_snapshot_page, upstream_host
from engines.ingest.plan import record_hash
from engines.ingest.validation import BIGINT_MAX
from engines.schemas import HttpConnectorConfig

P = TypeVar("P")

# How long the prefetch thread waits for the caller to take a page before
# it looks again whether the caller gave up.
_HANDOFF_POLL_S = 0.5


@dataclass(frozen=True, slots=True)
class Item:
    """One upstream record, checked and hashed (docs/contract.md §5)."""

    key: str
    version: int
    hash: str
    data: dict[str, Any]


def checked(
    config: HttpConnectorConfig, page: SnapshotPage, data_check: Callable[[dict[str, Any]], str | None] | None
) -> list[Item]:
    """The page's records hashed; a record no push could carry fails the page (schema_invalid)."""
    items = []
    for position, record in enumerate(page.records):
        problem = "version is over the bigint range" if record.version > BIGINT_MAX else None
        if problem is None and data_check is not None:
            problem = data_check(record.data)
        if problem is not None:
            url = str(config.snapshot_url)
            raise UpstreamError(
                ErrorKind.SCHEMA_INVALID,
                f"GET {url}: snapshot record {record.key!r}: {problem}",
                host=upstream_host(url),
                http_status=page.http_status,
                errors=[{"index": position, "message": problem}],
            )
        items.append(Item(record.key, record.version, record_hash(record.data), record.data))
    return items


def snapshot_pages(
    config: HttpConnectorConfig, *, limit: int, bucket: str | None = None, prefetch: bool = False
) -> Iterator[SnapshotPage]:
    """Every page of the snapshot (of `bucket` when given), in the upstream's order.

    Raises UpstreamError where a page fails, and when the upstream hands out
    the same page token twice (it would page forever).
    """
    pages = _pages(config, limit=limit, bucket=bucket)
    return prefetched(pages) if prefetch else pages


def _pages(config: HttpConnectorConfig, *, limit: int, bucket: str | None) -> Iterator[SnapshotPage]:
    token: str | None = None
    while True:
        page = fetch_snapshot_page(config, page_token=token, limit=limit, bucket=bucket)
        yield page
        if page.next_page_token is None:
            return
        if page.next_page_token == token:
            url = str(config.snapshot_url)
            raise UpstreamError(
                ErrorKind.SCHEMA_INVALID,
                f"GET {url}: the snapshot repeats page token {token!r}",
                host=upstream_host(url),
                http_status=page.http_status,
            )
        token = page.next_page_token


_DONE = object()


def prefetched(pages: Iterator[P]) -> Iterator[P]:
    """`pages` (any iterator of pages), each fetched on a thread while the caller works on the one before.

    A one-slot queue: the thread fetches page n+1 while page n waits or is
    being compared, then blocks until the caller takes n+1. An error in the
    thread is raised in the caller, in its place in the sequence; a caller
    that stops early makes the thread stop at its next hand-off.
    """
    handoff: queue.Queue[Any] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=_HANDOFF_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for page in pages:
                if not put(page):
                    return
            put(_DONE)
        except BaseException as exc:  # handed to the caller, raised there
            put(exc)

    thread = threading.Thread(target=produce, name="reconcile-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = handoff.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=_HANDOFF_POLL_S * 2)
