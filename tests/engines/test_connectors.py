"""The http connector against the real simulator: pages, shapes, and how each failure is classified."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from engines.connectors.http import (
    ErrorKind,
    UpstreamError,
    fetch_changes,
    fetch_digests,
    fetch_snapshot_page,
    upstream_host,
)
from engines.schemas import HttpConnectorConfig
from simulator.runner import SimulatorHandle, start_in_thread
from tests.simulator.support import independent_digests
from tests.stack import free_port

TOKEN = "upstream-token"


@pytest.fixture
def upstream() -> Iterator[SimulatorHandle]:
    with start_in_thread(token=TOKEN) as handle:
        yield handle


def _config(base_url: str, *, poll_path: str = "/changes", **overrides: Any) -> HttpConnectorConfig:
    fields: dict[str, Any] = {
        "poll_url": f"{base_url}{poll_path}",
        "snapshot_url": f"{base_url}/snapshot",
        "headers": {"Authorization": f"Bearer {TOKEN}"},
        "timeout_s": 2.0,
        **overrides,
    }
    return HttpConnectorConfig.model_validate(fields)


def _failure(config: HttpConnectorConfig) -> UpstreamError:
    with pytest.raises(UpstreamError) as caught:
        fetch_changes(config, after=0, limit=10)
    return caught.value


def test_it_fetches_feed_pages_in_seq_order_with_has_more(upstream: SimulatorHandle) -> None:
    # given
    upstream.sim.mutate(count=7)
    config = _config(upstream.base_url)
    # when
    first = fetch_changes(config, after=0, limit=5)
    rest = fetch_changes(config, after=5, limit=5)
    # then
    assert [event["seq"] for event in first.events] == [1, 2, 3, 4, 5]
    assert first.has_more is True
    assert first.http_status == 200
    assert [event["seq"] for event in rest.events] == [6, 7]
    assert rest.has_more is False


def test_it_sends_the_configured_headers(upstream: SimulatorHandle) -> None:
    # given: the same upstream, once without its credential
    config = _config(upstream.base_url, headers={})
    # when
    error = _failure(config)
    # then
    assert error.kind is ErrorKind.AUTH_FAILED
    assert fetch_changes(_config(upstream.base_url), after=0, limit=1).http_status == 200


@pytest.mark.parametrize(
    ("faults", "kind", "status", "retry_after_s"),
    [
        ({"outage": "feed"}, ErrorKind.UPSTREAM_UNAVAILABLE, 503, None),
        ({"outage": "feed", "outage_mode": "reset"}, ErrorKind.UPSTREAM_UNAVAILABLE, None, None),
        ({"http_5xx_rate": 1.0}, ErrorKind.UPSTREAM_UNAVAILABLE, "5xx", None),
        ({"timeout_rate": 1.0, "timeout_s": 5}, ErrorKind.UPSTREAM_TIMEOUT, None, None),
        ({"http_429_rate": 1.0, "retry_after_s": 7}, ErrorKind.RATE_LIMITED, 429, 7.0),
        ({"auth_fail": True}, ErrorKind.AUTH_FAILED, 401, None),
        ({"bad_json_rate": 1.0}, ErrorKind.SCHEMA_INVALID, 200, None),
    ],
    ids=["outage-503", "outage-reset", "5xx", "timeout", "429", "401", "bad-json"],
)
def test_each_simulated_fault_maps_to_its_failure_kind(
    upstream: SimulatorHandle, faults: dict[str, Any], kind: ErrorKind, status: int | str | None, retry_after_s: float
) -> None:
    # given
    upstream.sim.mutate(count=3)
    upstream.faults.update(faults)
    # when
    error = _failure(_config(upstream.base_url, timeout_s=0.3))
    # then
    assert error.kind is kind
    if status == "5xx":
        assert error.http_status in (500, 502, 503)
    else:
        assert error.http_status == status
    assert error.retry_after_s == retry_after_s
    assert error.host == f"http://127.0.0.1:{upstream.port}"
    assert error.host_down is (kind in (ErrorKind.UPSTREAM_UNAVAILABLE, ErrorKind.UPSTREAM_TIMEOUT))


def test_a_refused_connection_is_upstream_unavailable() -> None:
    # given: a port nobody listens on
    port = free_port()
    # when
    error = _failure(_config(f"http://127.0.0.1:{port}"))
    # then
    assert error.kind is ErrorKind.UPSTREAM_UNAVAILABLE
    assert error.http_status is None
    assert error.host_down


def test_json_of_the_wrong_shape_is_schema_invalid(upstream: SimulatorHandle) -> None:
    # given: a URL that answers 200 JSON, just not a feed page
    config = _config(upstream.base_url, poll_path="/healthz")
    # when
    error = _failure(config)
    # then
    assert error.kind is ErrorKind.SCHEMA_INVALID
    assert "wrong shape" in error.detail
    assert not error.host_down


def test_another_client_error_is_a_rejected_request(upstream: SimulatorHandle) -> None:
    # when
    error = _failure(_config(upstream.base_url, poll_path="/no-such-feed"))
    # then
    assert error.kind is ErrorKind.REQUEST_REJECTED
    assert error.http_status == 404
    assert "no route" in error.detail  # the upstream's own explanation is kept


def test_snapshot_pages_cover_every_record_once(upstream: SimulatorHandle) -> None:
    # given
    upstream.dataset.seed_records(25)
    config = _config(upstream.base_url)
    # when
    keys: list[str] = []
    token: str | None = None
    while True:
        page = fetch_snapshot_page(config, page_token=token, limit=10)
        keys += [record.key for record in page.records]
        token = page.next_page_token
        if token is None:
            break
    # then
    assert keys == sorted(record.key for record in upstream.dataset.records())


def test_digests_and_bucket_pages_match_the_upstream_truth(upstream: SimulatorHandle) -> None:
    # given
    upstream.dataset.seed_records(40)
    config = _config(upstream.base_url)
    truth = [record.as_snapshot_item() for record in upstream.dataset.records()]
    # when
    digests = fetch_digests(config)
    bucket = next(b for b, digest in digests.items() if digest != independent_digests([])["00"])
    page = fetch_snapshot_page(config, page_token=None, limit=100, bucket=bucket)
    # then
    assert digests == independent_digests(truth)
    assert page.records
    assert (
        independent_digests([{"key": r.key, "version": r.version, "data": r.data} for r in page.records])[bucket]
        == digests[bucket]
    )


def test_the_host_spells_out_the_default_port() -> None:
    assert upstream_host("https://api.example.com/v1/changes?x=1") == "https://api.example.com:443"
    assert upstream_host("http://[::1]:9001/changes") == "http://[::1]:9001"
