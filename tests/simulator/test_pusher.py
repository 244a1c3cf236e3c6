"""The pusher against a tiny receiving ASGI app that checks every signature."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterator

import pytest

from simulator.pusher import sign
from simulator.runner import SimulatorHandle, start_in_thread
from tests.simulator.support import Receiver, contract_errors, serve_asgi, wait_for

SECRET = "whsec_test"


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    rx = Receiver(secret=SECRET)
    with serve_asgi(rx) as url:
        yield rx, f"{url}/api/v1/sources/1/events"


@pytest.fixture
def pushing(receiver: tuple[Receiver, str]) -> Iterator[tuple[SimulatorHandle, Receiver]]:
    rx, url = receiver
    with start_in_thread(ingest_url=url, webhook_secret=SECRET, heartbeat_s=0.2, run_id="t1") as handle:
        yield handle, rx


def test_sign_is_hmac_sha256_of_the_raw_body() -> None:
    body = b'{"events":[]}'
    assert sign("s3cret", body) == "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()


def test_each_event_is_pushed_once_signed_and_in_seq_order(pushing: tuple[SimulatorHandle, Receiver]) -> None:
    # given
    sim, rx = pushing
    # when
    sim.sim.mutate(count=30)
    sim.sim.mutate(count=5, delete=True)
    wait_for(lambda: len(rx.events()) >= 35)
    # The receiver holds the body before the pusher has read the response
    # and counted it, so wait for the counters as well.
    wait_for(lambda: sim.sim.push.events_sent >= 35)
    # then
    events = rx.events()
    assert [e["seq"] for e in events] == list(range(1, 36))
    assert all(contract_errors(e) == [] for e in events)
    assert all(rx.signature_ok(d) for d in rx.deliveries)
    assert all(d.signature and d.signature.startswith("sha256=") for d in rx.deliveries)
    assert sim.sim.push.failed == 0 and sim.sim.push.events_sent == 35


def test_heartbeats_carry_the_newest_seq_and_unique_ids(pushing: tuple[SimulatorHandle, Receiver]) -> None:
    sim, rx = pushing
    wait_for(lambda: len(rx.heartbeats()) >= 1)
    sim.sim.mutate(count=4)
    wait_for(lambda: any(h["seq"] == 4 for h in rx.heartbeats()))
    beats = rx.heartbeats()
    assert beats[0] == {"id": "hb_t1_1", "type": "heartbeat", "seq": 0}
    assert len({h["id"] for h in beats}) == len(beats)
    assert all(contract_errors(h) == [] for h in beats)


def test_silent_changes_are_never_pushed(pushing: tuple[SimulatorHandle, Receiver]) -> None:
    sim, rx = pushing
    sim.sim.mutate(count=3, silent=True)
    sim.sim.mutate(count=1)
    wait_for(lambda: len(rx.events()) == 1 and any(h["seq"] == 1 for h in rx.heartbeats()))
    assert rx.events()[0]["seq"] == 1


def test_drops_leave_gaps_while_heartbeats_keep_flowing(pushing: tuple[SimulatorHandle, Receiver]) -> None:
    sim, rx = pushing
    sim.faults.update({"drop_rate": 1.0})
    sim.sim.mutate(count=10)
    wait_for(lambda: any(h["seq"] == 10 for h in rx.heartbeats()))
    assert rx.events() == [] and sim.sim.push.dropped == 10


def test_a_push_outage_sends_nothing_at_all(pushing: tuple[SimulatorHandle, Receiver]) -> None:
    sim, rx = pushing
    wait_for(lambda: len(rx.heartbeats()) >= 1)
    sim.faults.update({"outage": "push"})
    time.sleep(0.1)  # a push already in flight may still land
    before = len(rx.deliveries)
    sim.sim.mutate(count=5)
    wait_for(lambda: sim.sim.push.lost_down == 5)
    time.sleep(0.3)  # more than a heartbeat interval
    assert len(rx.deliveries) == before
    sim.faults.update({"outage": "none"})
    sim.sim.mutate(count=1)
    wait_for(lambda: [e["seq"] for e in rx.events()] == [6])


def test_flapping_push_alternates_silence_and_delivery(pushing: tuple[SimulatorHandle, Receiver]) -> None:
    sim, rx = pushing
    sim.faults.update({"flap_up_s": 0.3, "flap_down_s": 0.3})
    sim.sim.set_traffic(mutations_per_s=50)
    wait_for(lambda: sim.sim.push.lost_down > 0 and sim.sim.push.events_sent > 0 and sim.dataset.head_seq > 40)
    sim.sim.set_traffic(mutations_per_s=0)
    seqs = [e["seq"] for e in rx.events()]
    assert seqs == sorted(seqs) and len(seqs) < sim.dataset.head_seq


def test_duplicates_arrive_in_a_later_request(pushing: tuple[SimulatorHandle, Receiver]) -> None:
    sim, rx = pushing
    sim.faults.update({"duplicate_rate": 1.0})
    sim.sim.mutate(count=3)
    wait_for(lambda: len(rx.events()) >= 6)
    ids = [e["id"] for e in rx.events()]
    assert len(ids) == 6 and all(ids.count(i) == 2 for i in ids)
    for event_id in set(ids):
        requests = [n for n, d in enumerate(rx.deliveries) if any(e["id"] == event_id for e in d.events)]
        assert len(requests) == 2 and requests[0] < requests[1]


def test_reordering_delivers_later_seqs_first(pushing: tuple[SimulatorHandle, Receiver]) -> None:
    sim, rx = pushing
    sim.faults.update({"reorder_window": 8})
    sim.sim.mutate(count=8)
    wait_for(lambda: len(rx.events()) == 8)
    seqs = [e["seq"] for e in rx.events()]
    assert sorted(seqs) == list(range(1, 9)) and seqs != sorted(seqs)
    assert all(len(d.events) == 1 for d in rx.deliveries if d.events[0].get("type") != "heartbeat")


def test_schema_breaks_are_pushed_and_rejected_without_stopping_the_pusher(
    pushing: tuple[SimulatorHandle, Receiver],
) -> None:
    sim, rx = pushing
    sim.faults.update({"schema_break_rate": 1.0})
    sim.sim.mutate(count=5)
    wait_for(lambda: len(rx.events()) == 5)
    assert all(contract_errors(e) for e in rx.events())
    sim.faults.update({"schema_break_rate": 0.0})
    sim.sim.mutate(count=1)
    wait_for(lambda: len(rx.events()) == 6)
    assert contract_errors(rx.events()[-1]) == []


def test_receiver_errors_are_counted_not_fatal(pushing: tuple[SimulatorHandle, Receiver]) -> None:
    sim, rx = pushing
    rx.status = 503
    sim.sim.mutate(count=2)
    wait_for(lambda: sim.sim.push.failed >= 1 and sim.sim.push.last_status == 503)
    rx.status = 202
    sim.sim.mutate(count=1)
    wait_for(lambda: sim.sim.push.ok >= 1 and rx.events()[-1]["seq"] == 3)


def test_an_unreachable_ingest_url_is_counted_not_fatal() -> None:
    with start_in_thread(ingest_url="http://127.0.0.1:9/nowhere", heartbeat_s=0.1) as handle:
        handle.sim.mutate(count=2)
        wait_for(lambda: handle.sim.push.failed >= 2)
        assert handle.sim.push.last_status is None and handle.sim.push.last_error
        assert handle.thread.is_alive()
