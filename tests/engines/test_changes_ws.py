"""The changes websocket: backlog then live, in seq order, no gap, no duplicate.

The consumer reads from its own threads and connections, so its data is
committed (CommittedWorld) and removed after each test.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from channels import DEFAULT_CHANNEL_LAYER
from channels.layers import channel_layers
from channels.testing import WebsocketCommunicator
from django.test import override_settings

from beastflow.asgi import application
from beastflow.redis_client import get_redis
from engines import changes_bus, publish
from engines.changes_stream import ParamError, parse_stream_params, plan_live
from tests.callbacks.support import CommittedWorld, committed_world_fixture, insert_changes
from tests.conftest import Persona

TIMEOUT_S = 10


# The ordering rules, without a database ------------------------------------------


def _change(seq: int, source: int = 1) -> dict[str, Any]:
    return {"seq": seq, "source": source}


def test_a_batch_right_after_the_cursor_is_sent_whole() -> None:
    plan = plan_live(10, [_change(11), _change(12)], source_id=None)
    assert (plan.fill_below, [c["seq"] for c in plan.send], plan.cursor) == (None, [11, 12], 12)


def test_changes_already_sent_are_skipped_and_a_late_batch_is_dropped() -> None:
    assert [c["seq"] for c in plan_live(11, [_change(10), _change(11), _change(12)], source_id=None).send] == [12]
    late = plan_live(20, [_change(15), _change(16)], source_id=None)
    assert (late.fill_below, late.send, late.cursor) == (None, [], 20)


def test_a_batch_beyond_the_cursor_asks_for_the_hole_to_be_read_first() -> None:
    plan = plan_live(10, [_change(14), _change(15)], source_id=None)
    assert plan.fill_below == 14 and plan.cursor == 15


def test_the_source_filter_keeps_its_changes_but_the_cursor_passes_the_others() -> None:
    plan = plan_live(10, [_change(11, 1), _change(12, 2), _change(13, 1)], source_id=2)
    assert ([c["seq"] for c in plan.send], plan.cursor) == ([12], 13)


def test_a_batch_merged_out_of_order_is_sorted_and_deduplicated() -> None:
    plan = plan_live(10, [_change(13), _change(11), _change(12), _change(12)], source_id=None)
    assert [c["seq"] for c in plan.send] == [11, 12, 13]


@pytest.mark.parametrize(
    ("query", "expected"),
    [({}, (0, None)), ({"after": ["42"]}, (42, None)), ({"after": ["0"], "source": ["7"]}, (0, 7))],
)
def test_stream_parameters_are_read(query: dict[str, list[str]], expected: tuple[int, int | None]) -> None:
    params = parse_stream_params(query)
    assert (params.after, params.source_id) == expected


@pytest.mark.parametrize(
    "query", [{"after": ["-1"]}, {"after": ["x"]}, {"after": ["1", "2"]}, {"source": ["0"]}, {"after": ["9" * 19]}]
)
def test_bad_stream_parameters_are_refused(query: dict[str, list[str]]) -> None:
    with pytest.raises(ParamError):
        parse_stream_params(query)


# redis-py reads with a 5 s socket timeout by default and channels_redis
# blocks 5 s in BZPOPMIN: without a longer timeout a quiet consumer dies.
def test_the_channel_layer_outwaits_its_own_blocking_receive() -> None:
    from channels_redis.utils import create_pool

    layer = channel_layers.make_backend(DEFAULT_CHANNEL_LAYER)
    for host in layer.hosts:
        pool = create_pool(host)
        timeout = pool.connection_class(**pool.connection_kwargs).socket_timeout
        assert timeout is None or timeout > layer.brpop_timeout


# The consumer ----------------------------------------------------------------------


@pytest.fixture
def acme_world(alice: Persona) -> Iterator[CommittedWorld]:
    yield from committed_world_fixture(alice.tenant)


def _connect(path: str, key: str | None) -> WebsocketCommunicator:
    headers = [(b"authorization", f"Bearer {key}".encode())] if key else []
    return WebsocketCommunicator(application, path, headers=headers)


async def _closed_with(communicator: WebsocketCommunicator) -> int:
    connected, _ = await communicator.connect()
    assert connected  # accepted first, so the client can read the close code
    message = await communicator.receive_output(TIMEOUT_S)
    assert message["type"] == "websocket.close"
    await communicator.disconnect(int(message["code"]), timeout=0.2)  # what the server does next
    return int(message["code"])


async def _receive(communicator: WebsocketCommunicator, count: int) -> list[dict[str, Any]]:
    return [await communicator.receive_json_from(TIMEOUT_S) for _ in range(count)]


async def _receive_through(
    communicator: WebsocketCommunicator, last_seq: int, *, quiet: bool = True
) -> list[dict[str, Any]]:
    received: list[dict[str, Any]] = []
    while not received or received[-1]["seq"] < last_seq:
        received.append(await communicator.receive_json_from(TIMEOUT_S))
    if quiet:
        assert await communicator.receive_nothing(0.2)  # and nothing after it
    return received


class Writer(threading.Thread):
    """Commits small batches on a connection of its own and publishes each after its commit."""

    def __init__(self, world: CommittedWorld, source_id: int, commits: int) -> None:
        super().__init__(daemon=True)
        self.world, self.source_id, self.commits = world, source_id, commits
        self.written: list[dict[str, Any]] = []
        self.started_writing = threading.Event()
        self.stop = threading.Event()

    def run(self) -> None:
        def write() -> None:
            schema = self.world.tenant.schema_name
            for _ in range(self.commits):
                if self.stop.is_set():
                    return
                changes = insert_changes(self.source_id, random.randint(1, 3))
                publish.changes_committed(schema, changes)
                self.written += changes
                self.started_writing.set()

        self.world.run(write)


@contextlib.contextmanager
def _stopping(writer: Writer) -> Iterator[None]:
    try:
        yield
    finally:  # a failed test must not leave it writing after the database is closed to it
        writer.stop.set()
        if writer.is_alive():
            writer.join(TIMEOUT_S)


@pytest.mark.parametrize("queue_max", [1000, 2], ids=["queued", "overflowing"])
@pytest.mark.usefixtures("close_db_threads")
@pytest.mark.django_db
async def test_backlog_then_live_changes_have_no_gap_or_duplicate_across_a_reconnect(
    alice: Persona, acme_world: CommittedWorld, queue_max: int
) -> None:
    # given: a backlog, read in small pages so that commits land in the middle of it
    source = await asyncio.to_thread(acme_world.source, "orders")
    backlog = await asyncio.to_thread(acme_world.changes, source, 300)
    start = backlog[0]["seq"] - 1
    writer = Writer(acme_world, source, commits=80)
    with override_settings(BEASTFLOW_WS_PAGE_SIZE=20, BEASTFLOW_WS_QUEUE_MAX=queue_max), _stopping(writer):
        # when: a client connects, and writers commit while it reads the backlog
        first = _connect(f"/ws/v1/changes?after={start}", alice.api_key)
        assert (await first.connect())[0]
        received = await _receive(first, 1)
        writer.start()
        await asyncio.to_thread(writer.started_writing.wait, TIMEOUT_S)
        received += await _receive(first, 349)
        await first.disconnect(timeout=0.2)
        # when: it reconnects with the last seq it got, while commits go on
        again = _connect(f"/ws/v1/changes?after={received[-1]['seq']}", alice.api_key)
        assert (await again.connect())[0]
        await asyncio.to_thread(writer.join, TIMEOUT_S)
        received += await _receive_through(again, writer.written[-1]["seq"], quiet=False)
        await again.disconnect(timeout=0.2)
    # then: everything, once, in order, in the feed's item shape (other test
    # sessions may commit to this tenant meanwhile: their changes come too)
    seqs = [change["seq"] for change in received]
    assert seqs == sorted(set(seqs))
    assert [change for change in received if change["source"] == source] == backlog + writer.written


@pytest.mark.usefixtures("close_db_threads")
@pytest.mark.django_db
async def test_a_source_filtered_stream_gets_only_that_sources_changes_in_order(
    alice: Persona, acme_world: CommittedWorld
) -> None:
    # given
    orders = await asyncio.to_thread(acme_world.source, "orders")
    invoices = await asyncio.to_thread(acme_world.source, "invoices")
    before = await asyncio.to_thread(acme_world.changes, orders, 1)
    wanted = []
    for _ in range(3):
        await asyncio.to_thread(acme_world.changes, invoices, 2)
        wanted += await asyncio.to_thread(acme_world.changes, orders, 2)
    # when: the backlog, then live batches of both sources
    communicator = _connect(f"/ws/v1/changes?after={before[0]['seq']}&source={orders}", alice.api_key)
    assert (await communicator.connect())[0]
    got = await _receive(communicator, len(wanted))
    for _ in range(3):
        publish.changes_committed("t_acme", await asyncio.to_thread(acme_world.changes, invoices, 2))
        live = await asyncio.to_thread(acme_world.changes, orders, 1)
        publish.changes_committed("t_acme", live)
        wanted += live
    got += await _receive_through(communicator, wanted[-1]["seq"])
    await communicator.disconnect(timeout=0.2)
    # then
    assert got == wanted


@pytest.mark.usefixtures("close_db_threads")
@pytest.mark.django_db
async def test_changes_whose_publish_was_lost_are_read_from_the_database(
    alice: Persona, acme_world: CommittedWorld
) -> None:
    # given: a live client
    source = await asyncio.to_thread(acme_world.source, "orders")
    head = (await asyncio.to_thread(acme_world.changes, source, 1))[0]["seq"]
    with override_settings(BEASTFLOW_WS_IDLE_CHECK_S=0.3):
        communicator = _connect(f"/ws/v1/changes?after={head}&source={source}", alice.api_key)
        assert (await communicator.connect())[0]
        await communicator.send_to(text_data="not json: clients may send anything, it is ignored")
        assert await communicator.receive_nothing(0.1)
        # when: two commits are never published, then one is
        lost = await asyncio.to_thread(acme_world.changes, source, 2)
        lost += await asyncio.to_thread(acme_world.changes, source, 3)
        published = await asyncio.to_thread(acme_world.changes, source, 1)
        publish.changes_committed("t_acme", published)
        # then: the hole before it is filled from the database, in order
        assert await _receive(communicator, 6) == lost + published
        # when: one more is never published at all
        silent = await asyncio.to_thread(acme_world.changes, source, 1)
        # then: the idle check finds it
        assert await _receive(communicator, 1) == silent
        await communicator.disconnect(timeout=0.2)


@pytest.mark.usefixtures("close_db_threads")
@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/ws/v1/changes", "/ws/v1/changes?token=bf_wrong"])
async def test_a_stream_without_a_valid_key_is_closed_4401(alice: Persona, path: str) -> None:
    assert await _closed_with(_connect(path, None)) == 4401


@pytest.mark.usefixtures("close_db_threads")
@pytest.mark.django_db
@pytest.mark.parametrize("query", ["after=-3", "after=abc", "source=x", "after=1&after=2"])
async def test_bad_parameters_close_the_stream_4400(alice: Persona, query: str) -> None:
    assert await _closed_with(_connect(f"/ws/v1/changes?{query}", alice.api_key)) == 4400


@pytest.mark.usefixtures("close_db_threads")
@pytest.mark.django_db
async def test_another_tenants_or_an_unknown_source_closes_the_stream_4404(alice: Persona, charlie: Persona) -> None:
    globex = CommittedWorld(charlie.tenant)
    try:
        charlies_source = await asyncio.to_thread(globex.source, "orders")
        for source in (charlies_source, 987654321):
            path = f"/ws/v1/changes?source={source}&token={alice.api_key}"
            assert await _closed_with(_connect(path, None)) == 4404
        # while charlie may stream it
        communicator = _connect(f"/ws/v1/changes?source={charlies_source}", charlie.api_key)
        assert (await communicator.connect())[0]
        assert await communicator.receive_nothing(0.1)
        await communicator.disconnect(timeout=0.2)
    finally:
        await asyncio.to_thread(globex.close)


# The hub -----------------------------------------------------------------------------


async def test_the_hub_resubscribes_after_a_lost_connection_and_tells_listeners_to_catch_up() -> None:
    # given: a listener on a tenant's channel
    hub = changes_bus.hub()
    heard: list[Any] = []
    assert await hub.subscribe("t_hubtest", heard.append)
    changes_bus.publish("t_hubtest", [{"seq": 1}])
    await _until(lambda: heard == [[{"seq": 1}]])
    # when: Redis drops the hub's connection
    redis = get_redis()
    [mine] = [client for client in redis.client_list() if client["name"] == hub.client_name]
    redis.client_kill_filter(_id=mine["id"])
    # then: once subscribed again, the listener is told it may have missed some, and hears on
    await _until(lambda: None in heard)
    changes_bus.publish("t_hubtest", [{"seq": 2}])
    await _until(lambda: heard[-1] == [{"seq": 2}])
    await hub.unsubscribe("t_hubtest", heard.append)
    assert not [client for client in redis.client_list() if client["name"] == hub.client_name]


async def _until(condition: Any, timeout_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)
