"""Every API operation as a `Call` (method, path, parameters, body): shared by both clients.

A builder's parameters and docstring are those of the client method sending it
(`operations.py` makes the methods).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

from beastflow_sdk._core import Call, dumps, ndjson, params, push_call, with_id

V1 = "/api/v1"


def _source(source_id: int) -> str:
    return f"{V1}/sources/{int(source_id)}"


# -- push ---------------------------------------------------------------------------


def push(source_id: int, event: Mapping[str, Any], *, webhook_secret: str | None = None) -> Call:
    """Push one event; 202 only once it is committed. An event without `id` gets one that retries reuse.

    With `webhook_secret` the request is signed (`X-BeastFlow-Signature`) instead of using the API key.
    """
    return push_call(source_id, dumps(with_id(event)), webhook_secret=webhook_secret)


def push_ndjson(
    source_id: int, events: Iterable[Mapping[str, Any]] | bytes, *, webhook_secret: str | None = None
) -> Call:
    """Push one NDJSON body (`application/x-ndjson`): events (ids filled in) or bytes sent as they are."""
    body = events if isinstance(events, bytes) else ndjson(events)
    return push_call(source_id, body, content_type="application/x-ndjson", webhook_secret=webhook_secret)


# -- sources -----------------------------------------------------------------------


def sources_list(*, limit: int | None = None, cursor: str | None = None) -> Call:
    return Call("GET", f"{V1}/sources", params(limit=limit, cursor=cursor), retry=True)


def source_create(body: Mapping[str, Any]) -> Call:
    """Register a source (a whole definition, or `{"name", "preset", "config", "push"...}`).

    The answer's `webhook_secret` is shown this once.
    """
    return Call("POST", f"{V1}/sources", json=dict(body))


def source_get(source_id: int) -> Call:
    return Call("GET", _source(source_id), retry=True)


def source_update(source_id: int, changes: Mapping[str, Any]) -> Call:
    """PATCH: the given top-level fields replace the stored ones."""
    # Top-level fields replace: sending the same PATCH twice leaves the same source.
    return Call("PATCH", _source(source_id), json=dict(changes), retry=True)


def source_delete(source_id: int) -> Call:
    return Call("DELETE", _source(source_id), retry=True)


def source_health(source_id: int) -> Call:
    return Call("GET", f"{_source(source_id)}/health", retry=True)


def source_mode_switches(source_id: int, *, limit: int | None = None, cursor: str | None = None) -> Call:
    return Call("GET", f"{_source(source_id)}/mode-switches", params(limit=limit, cursor=cursor), retry=True)


def source_polls(source_id: int, *, limit: int | None = None, cursor: str | None = None) -> Call:
    return Call("GET", f"{_source(source_id)}/polls", params(limit=limit, cursor=cursor), retry=True)


def source_poll(source_id: int) -> Call:
    """Poll the upstream now (202: a worker runs it)."""
    return Call("POST", f"{_source(source_id)}/poll")


def source_reconcile(source_id: int) -> Call:
    """Reconcile now (202 with the run, or the run already under way)."""
    return Call("POST", f"{_source(source_id)}/reconcile")


def source_reconciliations(source_id: int, *, limit: int | None = None, cursor: str | None = None) -> Call:
    return Call("GET", f"{_source(source_id)}/reconciliations", params(limit=limit, cursor=cursor), retry=True)


def mapping_preview(source_id: int, body: Mapping[str, Any]) -> Call:
    """What the source's push mapping (or one given in `body`) makes of a sample request; stores nothing."""
    return Call("POST", f"{_source(source_id)}/mapping/preview", json=dict(body), retry=True)


# -- presets -----------------------------------------------------------------------


def presets_list() -> Call:
    return Call("GET", f"{V1}/presets", retry=True)


def preset_get(name: str) -> Call:
    """One preset, with `fills` and `example`."""
    return Call("GET", f"{V1}/presets/{quote(name, safe='')}", retry=True)


# -- records and changes -----------------------------------------------------------


def records_list(source_id: int, *, limit: int | None = None, cursor: str | None = None) -> Call:
    return Call("GET", f"{_source(source_id)}/records", params(limit=limit, cursor=cursor), retry=True)


def record_get(source_id: int, key: str) -> Call:
    """One record (NotFoundError when absent or deleted)."""
    return Call("GET", f"{_source(source_id)}/records/{quote(key, safe='')}", retry=True)


def changes_list(*, after: int = 0, source: int | None = None, limit: int | None = None) -> Call:
    return Call("GET", f"{V1}/changes", params(after=after, source=source, limit=limit), retry=True)


# -- subscriptions -----------------------------------------------------------------


def subscriptions_list(*, limit: int | None = None, cursor: str | None = None) -> Call:
    return Call("GET", f"{V1}/subscriptions", params(limit=limit, cursor=cursor), retry=True)


def subscription_create(
    url: str, *, sources: Sequence[int] | None = None, from_seq: int | None = None, signature: str | None = None
) -> Call:
    """Subscribe `url` to changes (`signature`: "beastflow" or "standard-webhooks"); `secret` is shown once."""
    body: dict[str, Any] = {"url": url}
    if sources is not None:
        body["sources"] = [int(source) for source in sources]
    if from_seq is not None:
        body["from_seq"] = from_seq
    if signature is not None:
        body["signature"] = signature
    return Call("POST", f"{V1}/subscriptions", json=body)


def subscription_get(subscription_id: int) -> Call:
    return Call("GET", f"{V1}/subscriptions/{int(subscription_id)}", retry=True)


def subscription_delete(subscription_id: int) -> Call:
    return Call("DELETE", f"{V1}/subscriptions/{int(subscription_id)}", retry=True)


def subscription_deliveries(subscription_id: int, *, limit: int | None = None, cursor: str | None = None) -> Call:
    path = f"{V1}/subscriptions/{int(subscription_id)}/deliveries"
    return Call("GET", path, params(limit=limit, cursor=cursor), retry=True)


def subscription_replay(subscription_id: int, *, from_seq: int) -> Call:
    return Call("POST", f"{V1}/subscriptions/{int(subscription_id)}/replay", json={"from_seq": from_seq}, retry=True)


def subscription_enable(subscription_id: int) -> Call:
    return Call("POST", f"{V1}/subscriptions/{int(subscription_id)}/enable", retry=True)


# -- failures, RCA, healing --------------------------------------------------------


def _filtered(path: str, *, source: int | None, status: str | None, limit: int | None, cursor: str | None) -> Call:
    return Call("GET", path, params(source=source, status=status, limit=limit, cursor=cursor), retry=True)


def failures_list(
    *, source: int | None = None, status: str | None = None, limit: int | None = None, cursor: str | None = None
) -> Call:
    return _filtered(f"{V1}/failures", source=source, status=status, limit=limit, cursor=cursor)


def failure_get(failure_id: int) -> Call:
    return Call("GET", f"{V1}/failures/{int(failure_id)}", retry=True)


def rca_list(
    *, source: int | None = None, status: str | None = None, limit: int | None = None, cursor: str | None = None
) -> Call:
    return _filtered(f"{V1}/rca", source=source, status=status, limit=limit, cursor=cursor)


def rca_get(rca_id: int) -> Call:
    """One result, with its `timeline`."""
    return Call("GET", f"{V1}/rca/{int(rca_id)}", retry=True)


def rca_confirm(rca_id: int, *, category: str | None = None, note: str = "") -> Call:
    """Confirm the result (no `category`), or correct it to `category`."""
    body: dict[str, Any] = {"note": note}
    if category is not None:
        body["category"] = category
    return Call("POST", f"{V1}/rca/{int(rca_id)}/confirm", json=body)


def healing_actions_list(
    *, source: int | None = None, status: str | None = None, limit: int | None = None, cursor: str | None = None
) -> Call:
    return _filtered(f"{V1}/healing-actions", source=source, status=status, limit=limit, cursor=cursor)


def healing_action_get(action_id: int) -> Call:
    """One action, with its audit trail (`events`)."""
    return Call("GET", f"{V1}/healing-actions/{int(action_id)}", retry=True)


def healing_action_approve(action_id: int, *, reason: str = "") -> Call:
    """Approve an action awaiting approval: it starts now (ConflictError when it is not waiting)."""
    return Call("POST", f"{V1}/healing-actions/{int(action_id)}/approve", json={"reason": reason})


def healing_action_reject(action_id: int, *, reason: str) -> Call:
    """Reject an action awaiting approval: nothing runs; the reason is kept."""
    return Call("POST", f"{V1}/healing-actions/{int(action_id)}/reject", json={"reason": reason})
