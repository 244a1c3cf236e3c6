"""The SDK's client against the live service: sources, presets, push, records, changes, errors, retries."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from beastflow_sdk import (
    NO_RETRY,
    AsyncClient,
    AuthenticationError,
    Client,
    NotFoundError,
    RateLimitedError,
    RetryInfo,
    UnprocessableError,
    delete,
    upsert,
)

from tests.sdk.conftest import SdkTenant, source_body

pytestmark = pytest.mark.e2e


def test_it_creates_reads_updates_and_deletes_a_source(bf: Client) -> None:
    # when
    created = bf.sources.create(source_body("crud"))
    # then
    assert created["webhook_secret"]  # shown once
    assert created["ingest_url"].endswith(f"/api/v1/sources/{created['id']}/events")
    assert bf.sources.get(created["id"])["name"] == created["name"]
    assert "webhook_secret" not in bf.sources.get(created["id"])
    assert [s["id"] for s in bf.sources.iter()] == [created["id"]]
    patched = bf.sources.update(created["id"], {"poll": {"min_interval_s": 2, "max_interval_s": 30}})
    assert patched["poll"]["min_interval_s"] == 2
    assert bf.sources.health(created["id"])["mode"] == "event"
    assert bf.sources.mode_switches(created["id"])["results"] == []
    bf.sources.delete(created["id"])
    with pytest.raises(NotFoundError) as gone:
        bf.sources.get(created["id"])
    assert gone.value.status == 404 and gone.value.detail == "No such source."


def test_it_lists_the_presets_and_reads_one(bf: Client) -> None:
    names = {preset["name"] for preset in bf.presets.list()["results"]}
    assert {"github-issues", "stripe-customers", "shopify-orders"} <= names
    github = bf.presets.get("github-issues")
    assert github["push_scheme"] == "github"
    assert "owner" in github["config_schema"]["required"]
    assert github["fills"]["connector"] == "rest"


def test_errors_are_typed_and_carry_the_problem_fields(bf: Client, sdk_tenant: SdkTenant) -> None:
    # a source without a connector: 422 naming the field
    with pytest.raises(UnprocessableError) as invalid:
        bf.sources.create({"name": "no-connector"})
    assert invalid.value.status == 422
    assert invalid.value.type.startswith("https://")
    assert any(error.get("field") == "connector" for error in invalid.value.errors), invalid.value.errors
    # a batch with one bad event: refused whole, the index counted from the first event given
    source = bf.sources.create(source_body())
    events = [upsert(f"k{i}", 1, {"i": i}) for i in range(5)]
    events[3]["version"] = "not a number"
    with pytest.raises(UnprocessableError) as refused:
        bf.push_batch(source["id"], events, batch_size=2)
    assert [error["index"] for error in refused.value.errors] == [3]
    assert refused.value.committed == {"accepted": 2, "duplicates": 0}  # the first request of two
    # a wrong key
    with Client(sdk_tenant.url, "bf_not_a_key") as stranger, pytest.raises(AuthenticationError):
        stranger.sources.list()


def test_push_single_batch_and_ndjson_then_records_and_changes(bf: Client) -> None:
    source_id = bf.sources.create(source_body())["id"]
    # when
    one = bf.push(source_id, upsert("order-1", 1, {"total": 10}))
    batch = bf.push_batch(source_id, [upsert(f"order-{i}", 1, {"total": i}) for i in range(2, 12)], batch_size=4)
    lines = bf.push_ndjson(source_id, [upsert("order-12", 1, {"total": 12}), delete("order-2", 2)])
    again = bf.push(source_id, upsert("order-1", 1, {"total": 10}, id=_first_event_id(bf, source_id)))
    # then
    assert one == {"accepted": 1, "duplicates": 0}
    assert batch == {"accepted": 10, "duplicates": 0}
    assert lines == {"accepted": 2, "duplicates": 0}
    assert again == {"accepted": 0, "duplicates": 1}
    records = list(bf.records.iter(source_id))
    assert len(records) == 11  # 12 keys, order-2 deleted
    assert bf.records.get(source_id, "order-7")["data"] == {"total": 7}
    with pytest.raises(NotFoundError):
        bf.records.get(source_id, "order-2")
    changes = list(bf.changes.iter(source=source_id, page_size=5))
    assert len(changes) == 13
    assert [c["seq"] for c in changes] == sorted({c["seq"] for c in changes})
    assert changes[-1]["type"] == "delete" and changes[-1]["key"] == "order-2"
    assert list(bf.changes.iter(after=changes[-1]["seq"], source=source_id)) == []


def _first_event_id(bf: Client, source_id: int) -> str:
    return bf.changes.list(source=source_id, limit=1)["results"][0]["event_id"]


def test_a_push_over_the_quota_waits_for_retry_after_and_then_commits_once(
    tenant_factory: Callable[..., SdkTenant],
) -> None:
    # given: a tenant allowed 3 events a burst and 1 a second
    tenant = tenant_factory(rate=1, burst=3)
    retries: list[RetryInfo] = []
    with tenant.client(on_retry=retries.append) as bf:
        source_id = bf.sources.create(source_body())["id"]
        assert bf.push_batch(source_id, [upsert(f"k{i}", 1, {}) for i in range(3)]) == {
            "accepted": 3,
            "duplicates": 0,
        }
        # when: the bucket is empty
        result = bf.push(source_id, upsert("k3", 1, {}))
        # then: one 429 answered, its Retry-After obeyed, then committed once
        assert result == {"accepted": 1, "duplicates": 0}
        assert retries and retries[0].status == 429 and retries[0].delay_s >= 1
        assert len(list(bf.changes.iter(source=source_id))) == 4
    with tenant.client(retry=NO_RETRY) as impatient, pytest.raises(RateLimitedError) as limited:
        impatient.push(source_id, upsert("x", 1, {}))  # the retry took the one token there was
    assert limited.value.retry_after is not None and limited.value.retry_after >= 1


class _LoseFirstAnswer(httpx.HTTPTransport):
    """The network losing the answer to the first push after the server committed it."""

    def __init__(self) -> None:
        super().__init__()
        self.lost = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if request.method == "POST" and request.url.path.endswith("/events") and not self.lost:
            response.read()
            self.lost += 1
            raise httpx.ReadError("connection reset while reading the answer", request=request)
        return response


def test_a_retry_after_a_lost_answer_is_a_duplicate_never_a_second_change(sdk_tenant: SdkTenant) -> None:
    transport = _LoseFirstAnswer()
    retries: list[RetryInfo] = []
    with sdk_tenant.client(transport=transport, on_retry=retries.append) as bf:
        source_id = bf.sources.create(source_body())["id"]
        # when: the event has no id of its own; the SDK gives it one before the first attempt
        result = bf.push(source_id, {"type": "upsert", "key": "order-9", "version": 1, "data": {"total": 9}})
        # then
        assert transport.lost == 1 and retries[0].status is None
        assert result == {"accepted": 0, "duplicates": 1}  # the first attempt had committed it
        changes = list(bf.changes.iter(source=source_id))
        assert [(c["key"], c["version"]) for c in changes] == [("order-9", 1)]


def test_failures_rca_and_healing_lists_are_pages(bf: Client) -> None:
    for page in (bf.failures.list(), bf.rca.list(), bf.healing_actions.list(status="awaiting_approval")):
        assert page == {"results": [], "next_cursor": None}
    with pytest.raises(NotFoundError):
        bf.healing_actions.approve(999_999, reason="no such action")


def test_subscriptions_are_created_listed_and_deleted(bf: Client) -> None:
    source_id = bf.sources.create(source_body())["id"]
    made = bf.subscriptions.create("http://127.0.0.1:9/hook", sources=[source_id], signature="standard-webhooks")
    assert made["secret"].startswith("whsec_")
    assert [s["id"] for s in bf.subscriptions.iter()] == [made["id"]]
    assert bf.subscriptions.deliveries(made["id"])["results"] == []
    bf.subscriptions.delete(made["id"])
    with pytest.raises(NotFoundError):
        bf.subscriptions.get(made["id"])


async def test_the_async_client_pushes_and_pages(sdk_tenant: SdkTenant) -> None:
    async with AsyncClient(sdk_tenant.url, sdk_tenant.api_key) as bf:
        source_id = (await bf.sources.create(source_body()))["id"]
        assert await bf.push_batch(source_id, [upsert(f"a{i}", 1, {"i": i}) for i in range(7)], batch_size=3) == {
            "accepted": 7,
            "duplicates": 0,
        }
        keys = [change["key"] async for change in bf.changes.iter(source=source_id, page_size=2)]
        assert keys == [f"a{i}" for i in range(7)]
        records = [record async for record in bf.records.iter(source_id)]
        assert {record["key"] for record in records} == set(keys)
        follower = bf.follow(source=source_id, idle_timeout_s=2)
        followed: list[Any] = [change["key"] async for change in follower]
        assert followed == keys and follower.last_seq > 0


def test_push_signed_with_the_webhook_secret_needs_no_api_key(bf: Client, sdk_tenant: SdkTenant) -> None:
    created = bf.sources.create(source_body())
    with Client(sdk_tenant.url, api_key=None) as anonymous:
        assert anonymous.push(created["id"], upsert("s1", 1, {}), webhook_secret=created["webhook_secret"]) == {
            "accepted": 1,
            "duplicates": 0,
        }
        with pytest.raises(AuthenticationError):
            anonymous.push(created["id"], upsert("s2", 1, {}), webhook_secret="not the secret")
    assert json.loads(json.dumps(bf.records.get(created["id"], "s1")))["version"] == 1
