"""Hostile JSON at both ingest front doors: never a 5xx, and nothing stored for what is refused.

Hypothesis builds bodies from events with wrong types, NUL, lone
surrogates, huge numbers and giant strings, then may damage the bytes
(invalid UTF-8, duplicate keys, nesting thousands deep, a cut). Each body is
posted to the Django view (in process) and to the fast path (the real
server, uvicorn); a refused body must leave the source's events unchanged.
The budget (max_examples, no shrinking past it) keeps the two under ~30 s.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from django_tenants.utils import tenant_context
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engines.models import Event
from tests.conftest import Persona
from tests.factories import make_source

HOSTILE_TEXT = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["\x00", "a\x00b", "\ud800", "x\udfffy", "\U0010ffff", "\u202e", "x" * 300, "é" * 70_000]),
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    HOSTILE_TEXT,
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(HOSTILE_TEXT, inner, max_size=3),
    max_leaves=8,
)
SAFE_TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=16)
SAFE_VALUES = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**53), 2**53),
        st.floats(allow_nan=False, allow_infinity=False),
        SAFE_TEXT,
    ),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(SAFE_TEXT, inner, max_size=3),
    max_leaves=8,
)
# Valid events beside hostile ones: a batch holding both must be refused whole.
VALID_EVENTS = st.fixed_dictionaries(
    {
        "id": SAFE_TEXT.map(lambda text: f"fz-{text}"),
        "type": st.just("upsert"),
        "key": SAFE_TEXT,
        "version": st.integers(1, 2**53),
        "data": st.dictionaries(SAFE_TEXT, SAFE_VALUES, max_size=4),
    }
)
HOSTILE_EVENTS = st.fixed_dictionaries(
    {},
    optional={
        "id": st.one_of(st.text(min_size=1, max_size=12), HOSTILE_TEXT, st.integers(), st.none()),
        "type": st.sampled_from(["upsert", "delete", "merge", "", 5, None]),
        "key": st.one_of(st.text(min_size=1, max_size=12), HOSTILE_TEXT, st.integers(), st.lists(st.integers())),
        "version": st.one_of(st.integers(min_value=-(2**70), max_value=2**70), st.floats(), HOSTILE_TEXT),
        "data": JSON_VALUES,
    },
)
EVENTS = st.one_of(VALID_EVENTS, HOSTILE_EVENTS)
BODIES = st.one_of(
    EVENTS,
    st.fixed_dictionaries({"events": st.lists(EVENTS, max_size=4)}),
    st.lists(EVENTS, max_size=4),
    JSON_VALUES,
)
DAMAGE = st.sampled_from(["none", "invalid-utf8", "duplicate-key", "deep", "huge-number", "cut", "nul-byte"])


def _damaged(body: Any, damage: str, ascii_only: bool) -> bytes:
    raw = json.dumps(body, ensure_ascii=ascii_only, allow_nan=True).encode("utf-8", "surrogatepass")
    if damage == "invalid-utf8":
        return raw.replace(b'"', b'"\xff\xfe', 1)
    if damage == "duplicate-key":
        return b'{"id": "dup-1", "id": "dup-2", "type": "upsert", "key": "k", "key": 7, "version": 1, "data": {}}'
    if damage == "deep":
        depth = 5_000
        return (
            b'{"id": "deep", "type": "upsert", "key": "k", "version": 1, "data": ' + b"[" * depth + b"]" * depth + b"}"
        )
    if damage == "huge-number":
        return b'{"id": "huge", "type": "upsert", "key": "k", "version": ' + b"9" * 400 + b', "data": {"n": 1e999}}'
    if damage == "cut":
        return raw[: max(0, len(raw) // 2)]
    if damage == "nul-byte":
        return raw.replace(b"{", b"{\x00", 1) or b"\x00"
    return raw


def _stored(persona: Persona, source_id: int) -> int:
    with tenant_context(persona.tenant):  # type: ignore[attr-defined]
        return Event.objects.filter(source_id=source_id).count()


FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,  # the same bodies every run: a failure here is reproducible
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture
def fuzz_source(alice: Persona) -> int:
    with tenant_context(alice.tenant):
        source, _ = make_source("fuzz")
    return source.pk


@FUZZ
@given(body=BODIES, damage=DAMAGE, ascii_only=st.booleans(), ndjson=st.booleans())
def test_the_django_view_never_answers_5xx_and_stores_nothing_it_refuses(
    alice: Persona, fuzz_source: int, body: Any, damage: str, ascii_only: bool, ndjson: bool
) -> None:
    # given
    raw = _damaged(body, damage, ascii_only)
    before = _stored(alice, fuzz_source)
    # when
    response = alice.client().post(
        f"/api/v1/sources/{fuzz_source}/events",
        data=raw,
        content_type="application/x-ndjson" if ndjson else "application/json",
    )
    # then
    assert response.status_code < 500, (response.status_code, raw[:200])
    if response.status_code != 202:
        assert response["Content-Type"] == "application/problem+json"
        assert _stored(alice, fuzz_source) == before, raw[:200]


@pytest.fixture
def fast_path(live_server_url: str, committed_source: tuple[int, str], personas: dict[str, Persona]) -> Any:
    client = httpx.Client(
        base_url=live_server_url,
        headers={"Authorization": f"Bearer {personas['alice'].api_key}"},
        timeout=30,
    )
    with client:
        yield client, committed_source[0]


@FUZZ
@given(body=BODIES, damage=DAMAGE, ascii_only=st.booleans(), ndjson=st.booleans())
def test_the_fast_path_never_answers_5xx_and_stores_nothing_it_refuses(
    fast_path: Any,
    personas: dict[str, Persona],
    django_db_blocker: pytest.FixtureRequest,
    body: Any,
    damage: str,
    ascii_only: bool,
    ndjson: bool,
) -> None:
    # given
    client, source_id = fast_path
    raw = _damaged(body, damage, ascii_only)
    with django_db_blocker.unblock():  # type: ignore[attr-defined]
        before = _stored(personas["alice"], source_id)
        # when
        response = client.post(
            f"/api/v1/sources/{source_id}/events",
            content=raw,
            headers={"Content-Type": "application/x-ndjson" if ndjson else "application/json"},
        )
        # then
        assert response.status_code < 500, (response.status_code, raw[:200])
        if response.status_code != 202:
            assert response.headers["content-type"] == "application/problem+json"
            assert _stored(personas["alice"], source_id) == before, raw[:200]
