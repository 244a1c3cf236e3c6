"""Push mappings read upstreams' own webhooks into events (no database).

GitHub's requests are its published example payloads (@octokit/webhooks-examples,
tests/upstream_packages.py); Stripe, Shopify and Standard Webhooks bodies are
written here in the shapes their documentation gives.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engines.connectors.mapping import to_microseconds
from engines.connectors.push_mapping import Body, PushProgram, parse_body, truthy
from engines.ingest.hashing import record_hash
from engines.ingest.service import data_schema_check
from engines.ingest.validation import BodyError
from engines.schemas import PushMapping
from tests.upstream_fixtures import upstream_fixture  # noqa: F401  (the `upstream` fixture)
from tests.upstream_packages import UpstreamSigner

GITHUB_ISSUES = PushMapping(
    filter="headers.\"x-github-event\" == 'issues'",
    id='headers."x-github-delivery"',
    key="body.issue.id",
    version="body.issue.updated_at",
    op="body.action == 'deleted' && 'delete' || 'upsert'",
    data="body.issue",
)
STRIPE_CUSTOMERS = PushMapping(
    filter="starts_with(body.type, 'customer.')",
    id="body.id",
    key="body.data.object.id",
    version="body.created",
    op="body.type == 'customer.deleted' && 'delete' || 'upsert'",
    data="body.data.object",
    occurred_at="body.created",
)
SHOPIFY_ORDERS = PushMapping(
    filter="starts_with(headers.\"x-shopify-topic\", 'orders/')",
    id='headers."x-shopify-webhook-id"',
    key="body.id",
    version="body.updated_at",
    op="headers.\"x-shopify-topic\" == 'orders/delete' && 'delete' || 'upsert'",
)
BATCHED = PushMapping(
    items="body.records", id="join(':', [item.id, to_string(item.rev)])", key="item.id", version="item.rev"
)


def github_headers(event: str, delivery: str) -> dict[str, str]:
    return {"x-github-event": event, "x-github-delivery": delivery, "content-type": "application/json"}


def run(mapping: PushMapping, headers: dict[str, str], body: Any, **kwargs: Any) -> Any:
    return PushProgram(mapping, **kwargs).run(headers, Body(body))


def test_every_github_issues_example_maps_to_its_issue(upstream: UpstreamSigner) -> None:
    # given
    program = PushProgram(GITHUB_ISSUES)
    examples = upstream.github_examples("issues")
    # when
    mapped = [program.run(github_headers("issues", f"delivery-{n}"), Body(body)) for n, body in enumerate(examples)]
    # then
    assert len(examples) == 29
    assert all(not m.errors and not m.ignored and len(m.events) == 1 for m in mapped)
    for n, (body, result) in enumerate(zip(examples, mapped, strict=True)):
        event = result.events[0]
        issue = body["issue"]
        assert event.id == f"delivery-{n}"
        assert event.key == str(issue["id"])
        assert event.version == to_microseconds(datetime.fromisoformat(issue["updated_at"].replace("Z", "+00:00")))
        if body["action"] == "deleted":
            assert (event.type, event.data, event.hash) == ("delete", None, "")
        else:
            assert (event.type, event.data) == ("upsert", issue)
            assert event.hash == record_hash(issue)
        assert event.seq is None


def test_github_pings_and_other_events_are_ignored(upstream: UpstreamSigner) -> None:
    program = PushProgram(GITHUB_ISSUES)
    pings = upstream.github_examples("ping")
    pushes = upstream.github_examples("push")
    results = [program.run(github_headers("ping", "p"), Body(b)) for b in pings]
    results += [program.run(github_headers("push", "q"), Body(b)) for b in pushes]
    assert len(pings) == 4 and pushes
    assert all(r.ignored and not r.events and not r.errors for r in results)


def test_stripe_customer_events_map_with_unix_versions_and_deletes() -> None:
    created = 1_800_000_000
    customer = {"id": "cus_9s6XKzkNRiz8i3", "object": "customer", "email": "jenny@example.com", "balance": 0}
    updated = {"id": "evt_1", "object": "event", "type": "customer.updated", "created": created,
               "data": {"object": customer, "previous_attributes": {"email": "j@example.com"}}}  # fmt: skip
    deleted = {**updated, "id": "evt_2", "type": "customer.deleted", "created": created + 5}
    invoice = {**updated, "id": "evt_3", "type": "invoice.paid"}
    [upsert] = run(STRIPE_CUSTOMERS, {}, updated).events
    [delete] = run(STRIPE_CUSTOMERS, {}, deleted).events
    assert (upsert.id, upsert.key, upsert.version, upsert.type) == ("evt_1", "cus_9s6XKzkNRiz8i3", created, "upsert")
    assert upsert.data == customer and upsert.occurred_at == datetime.fromtimestamp(created, tz=UTC)
    assert (delete.type, delete.version, delete.data) == ("delete", created + 5, None)
    assert run(STRIPE_CUSTOMERS, {}, invoice).ignored


def test_shopify_orders_take_the_topic_and_webhook_id_headers_and_default_data_to_the_body() -> None:
    order = {"id": 820982911946154508, "email": "jon@example.com", "updated_at": "2026-11-26T10:00:00-05:00"}
    headers = {"x-shopify-topic": "orders/updated", "x-shopify-webhook-id": "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"}
    [event] = run(SHOPIFY_ORDERS, headers, order).events
    assert (event.id, event.key, event.data) == (headers["x-shopify-webhook-id"], "820982911946154508", order)
    assert event.version == to_microseconds(datetime(2026, 11, 26, 15, 0, tzinfo=UTC))
    [gone] = run(SHOPIFY_ORDERS, {**headers, "x-shopify-topic": "orders/delete"}, {"id": order["id"], **order}).events
    assert gone.type == "delete"
    assert run(SHOPIFY_ORDERS, {**headers, "x-shopify-topic": "products/update"}, order).ignored


def test_items_make_one_event_per_item_and_data_defaults_to_the_item() -> None:
    body = {"records": [{"id": "a", "rev": 1, "n": 1}, {"id": "b", "rev": 7, "n": 2}]}
    events = run(BATCHED, {}, body).events
    assert [(e.id, e.key, e.version, e.data) for e in events] == [
        ("a:1", "a", 1, {"id": "a", "rev": 1, "n": 1}),
        ("b:7", "b", 7, {"id": "b", "rev": 7, "n": 2}),
    ]
    assert run(BATCHED, {}, {"records": []}).ignored


def test_a_bad_item_refuses_the_whole_request_naming_the_field_and_the_item() -> None:
    body = {"records": [{"id": "a", "rev": 1}, {"id": "b", "rev": "yesterday"}, {"rev": 2}, {"id": "a", "rev": 1}]}
    result = run(BATCHED, {}, body)
    assert result.events == []
    assert {(e["field"], e.get("index")) for e in result.errors} == {
        ("push.mapping.version", 1),
        ("push.mapping.key", 2),
        ("push.mapping.id", 2),
        ("push.mapping.id", 3),  # repeats item 0's id
    }


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"k": "x", "v": 1}, "push.mapping.id"),  # no id
        ({"id": "e", "v": 1}, "push.mapping.key"),  # no key
        ({"id": "e", "k": "x"}, "push.mapping.version"),  # no version
        ({"id": "e", "k": "x", "v": -1}, "push.mapping.version"),
        ({"id": "e", "k": "x", "v": 1.5}, "push.mapping.version"),
        ({"id": "e", "k": "x", "v": True}, "push.mapping.version"),
        ({"id": "e", "k": "x", "v": "2026-11-26T10:00:00"}, "push.mapping.version"),  # no zone
        ({"id": "e", "k": {"a": 1}, "v": 1}, "push.mapping.key"),
        ({"id": "x" * 256, "k": "x", "v": 1}, "push.mapping.id"),
        ({"id": "e", "k": "x", "v": 1, "op": "remove"}, "push.mapping.op"),
        ({"id": "e", "k": "x", "v": 1, "d": [1]}, "push.mapping.data"),
        ({"id": "e", "k": "x", "v": 1, "at": "soon"}, "push.mapping.occurred_at"),
    ],
)
def test_a_mapping_that_finds_no_usable_value_names_its_field(body: dict[str, Any], field: str) -> None:
    mapping = PushMapping(id="body.id", key="body.k", version="body.v", op="body.op", data="body.d || body",
                          occurred_at="body.at")  # fmt: skip
    result = run(mapping, {}, body)
    assert result.events == [] and not result.ignored
    assert [e["field"] for e in result.errors] == [field]


def test_data_is_checked_against_the_sources_data_schema() -> None:
    schema = {"type": "object", "required": ["email"], "properties": {"email": {"type": "string"}}}
    mapping = PushMapping(id="body.id", key="body.id", version="body.v", data="body.customer")
    check = data_schema_check(schema)
    good = run(mapping, {}, {"id": "c1", "v": 1, "customer": {"email": "a@b"}}, data_check=check)
    bad = run(mapping, {}, {"id": "c1", "v": 1, "customer": {"name": "no email"}}, data_check=check)
    assert len(good.events) == 1
    assert bad.errors[0]["field"] == "push.mapping.data" and "schema" in bad.errors[0]["message"]


def test_versions_read_integers_quoted_integers_and_rfc3339_in_microseconds() -> None:
    mapping = PushMapping(id="body.id", key="body.id", version="body.v")
    versions = [run(mapping, {}, {"id": "x", "v": v}).events[0].version for v in (7, "42", "1970-01-01T00:00:01.5Z")]
    assert versions == [7, 42, 1_500_000]


def test_the_filter_follows_jmespath_truth() -> None:
    assert [truthy(v) for v in (None, False, "", [], {}, 0, 0.0, "x", [0], {"a": None}, True)] == [
        *[False] * 5,
        *[True] * 6,
    ]
    mapping = PushMapping(filter="body.count", id="body.id", key="body.id", version="`1`")
    assert not run(mapping, {}, {"id": "a", "count": 0}).ignored  # 0 is true in JMESPath, unlike Python
    assert run(mapping, {}, {"id": "a", "count": []}).ignored


def test_data_made_by_an_expression_hashes_like_the_reference() -> None:
    made = PushMapping(id="body.id", key="body.id", version="`1`", data="{total: to_number(body.total), id: body.id}")
    body = parse_body(json.dumps({"id": "o1", "total": "1e16"}).encode())
    [event] = PushProgram(made).run({}, body).events
    assert event.data == {"total": 1e16, "id": "o1"}
    assert event.hash == record_hash({"total": 1e16, "id": "o1"})


def test_bodies_parse_as_json_or_as_githubs_form_encoded_payload() -> None:
    assert parse_body(b'{"a": [1, 2.5, "x"]}').value == {"a": [1, 2.5, "x"]}
    form = b"payload=%7B%22zen%22%3A%22Keep+it+logically+awesome.%22%7D"
    assert parse_body(form, "application/x-www-form-urlencoded").value == {"zen": "Keep it logically awesome."}
    huge = parse_body(b'{"n": 1e400}')  # beyond a double: Python's parser takes it, the hash the reference way
    assert huge.value == {"n": float("inf")} and not huge.decoded
    for raw, content_type in ((b"{", ""), (b"", ""), (b"x=1", "application/x-www-form-urlencoded")):
        with pytest.raises(BodyError) as caught:
            parse_body(raw, content_type)
        assert caught.value.status == 400


def test_a_type_error_at_run_time_is_an_error_of_the_field_that_made_it() -> None:
    mapping = PushMapping(filter="starts_with(body.type, 'customer.')", id="body.id", key="body.id", version="`1`")
    result = run(mapping, {}, {"id": "a", "type": 42})
    assert [e["field"] for e in result.errors] == ["push.mapping.filter"]
    assert "starts_with" in result.errors[0]["message"]


# Text without NUL: a NUL cannot be stored and is refused at validation (tests/security).
_TEXT = st.characters(exclude_categories=("Cs",), exclude_characters="\x00")
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.text(_TEXT)
    | st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from([1e16, 1e-05, 0.0001, 1.5e300, -0.0, 123.456]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(_TEXT, max_size=8), children, max_size=4),
    max_leaves=20,
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(data=st.dictionaries(st.text(_TEXT, max_size=8), JSON_VALUES, max_size=6))
def test_the_record_hash_of_a_mapped_body_is_the_reference_hash_whatever_it_holds(data: dict[str, Any]) -> None:
    # given: a body as an upstream would send it (Python's JSON, floats of every magnitude included)
    raw = json.dumps({"id": "e1", "v": 1, "data": data}, ensure_ascii=False).encode()
    mapping = PushMapping(id="body.id", key="body.id", version="body.v", data="body.data")
    # when
    [event] = PushProgram(mapping).run({}, parse_body(raw)).events
    # then: the canonical JSON's sha256 of what was parsed, however the hash was taken
    assert event.hash == record_hash(json.loads(raw)["data"])


def test_a_body_beyond_a_double_is_refused_not_stored_as_null() -> None:
    # jsonb has no Infinity (it would be stored as null, unlike its hash): a number out of range is refused.
    raw = b'{"id": "e1", "data": {"n": 1e400, "m": [2e400]}}'
    mapping = PushMapping(id="body.id", key="body.id", version="`1`", data="body.data")
    mapped = PushProgram(mapping).run({}, parse_body(raw))
    assert not mapped.events
    assert mapped.errors[0]["field"] == "push.mapping.data" and "out of range" in mapped.errors[0]["message"]
