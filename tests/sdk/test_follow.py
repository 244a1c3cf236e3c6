"""The websocket follower against the live service: backlog, live changes, and resuming after the server goes away."""

from __future__ import annotations

import threading

import pytest
from beastflow_sdk import AuthenticationError, Backoff, ChangeFollower, Client, NotFoundError, upsert
from beastflow_sdk.models import Change
from websockets.exceptions import ConnectionClosed

from tests.conftest import web_server
from tests.sdk.conftest import SdkTenant, source_body
from tests.stack import free_port, wait_for

pytestmark = pytest.mark.e2e


def test_the_follower_resumes_by_seq_after_the_server_closes_the_socket(sdk_tenant: SdkTenant) -> None:
    # given: a follower on a web server of its own, and the session's server to push through while it is down
    port = free_port()
    with sdk_tenant.client() as bf:
        source_id = bf.sources.create(source_body())["id"]
    got: list[Change] = []
    lost: list[BaseException] = []
    follower = ChangeFollower(
        f"http://127.0.0.1:{port}",
        sdk_tenant.api_key,
        source=source_id,
        backoff=Backoff(initial_s=0.2, max_s=1.0),
        idle_timeout_s=90,
        on_reconnect=lambda seq, exc: lost.append(exc),
    )

    def follow() -> None:
        for change in follower:
            got.append(change)
            if len(got) == 15:
                return

    thread = threading.Thread(target=follow, daemon=True)

    def push(url: str, keys: range) -> None:
        with Client(url, sdk_tenant.api_key) as client:
            for i in keys:  # one request each: live changes, one frame each
                client.push(source_id, upsert(f"k{i:02d}", 1, {"i": i}))

    with web_server(port) as first:
        thread.start()
        push(first, range(5))
        wait_for(lambda: len(got) == 5, 30, "5 changes followed")
    # when: that server stopped (it closed the socket); changes are committed elsewhere meanwhile
    push(sdk_tenant.url, range(5, 10))
    wait_for(lambda: lost, 30, "the loss noticed")
    with web_server(port) as second:
        wait_for(lambda: len(got) == 10, 30, "the changes made while it was down")
        push(second, range(10, 15))
        wait_for(lambda: len(got) == 15, 30, "15 changes followed")
    thread.join(timeout=10)
    # then: every change once, in seq order, across the reconnect
    assert isinstance(lost[0], ConnectionClosed), lost[0]
    assert [change["key"] for change in got] == [f"k{i:02d}" for i in range(15)]
    seqs = [change["seq"] for change in got]
    assert seqs == sorted(set(seqs))
    assert follower.last_seq == seqs[-1] and follower.reconnects >= 1


def test_the_follower_starts_after_a_seq_and_stops_when_idle(bf: Client) -> None:
    source_id = bf.sources.create(source_body())["id"]
    bf.push_batch(source_id, [upsert(f"k{i}", 1, {}) for i in range(6)])
    third = bf.changes.list(source=source_id, limit=3)["results"][-1]["seq"]
    keys = [change["key"] for change in bf.follow(after=third, source=source_id, idle_timeout_s=1.5)]
    assert keys == ["k3", "k4", "k5"]


def test_the_follower_raises_what_a_reconnect_cannot_fix(bf: Client, sdk_tenant: SdkTenant) -> None:
    with pytest.raises(AuthenticationError):
        list(ChangeFollower(sdk_tenant.url, "bf_wrong", idle_timeout_s=5))
    with pytest.raises(NotFoundError):
        list(bf.follow(source=999_999, idle_timeout_s=5))
