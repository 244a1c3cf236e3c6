"""Each fault observed through HTTP against a real running simulator."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from simulator.runner import SimulatorHandle, start_in_thread
from tests.simulator.support import bucket_of, contract_errors, independent_digests, wait_for

TOKEN = "upstream-token"
CONTROL_TOKEN = "control-token"
CONTROL = {"Authorization": f"Bearer {CONTROL_TOKEN}"}


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorHandle]:
    with start_in_thread(token=TOKEN, seed=11, control_token=CONTROL_TOKEN) as handle:
        yield handle


@pytest.fixture
def upstream(sim: SimulatorHandle) -> Iterator[httpx.Client]:
    """A client as BeastFlow's http connector would be, on a clean simulator."""
    sim.sim.reset(dataset=True)
    with httpx.Client(base_url=sim.base_url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=2.0) as client:
        yield client
    sim.sim.reset(dataset=True)


def control(client: httpx.Client, route: str, body: Any = None) -> Any:
    response = client.post(f"/_control/{route}", json=body if body is not None else {}, headers=CONTROL)
    assert response.status_code == 200, response.text
    return response.json()


def feed(client: httpx.Client, after: int = 0, limit: int = 100) -> httpx.Response:
    return client.get("/changes", params={"after": after, "limit": limit})


# -- the contract surface ------------------------------------------------------------


def test_change_feed_pages_by_after_until_has_more_is_false(upstream: httpx.Client) -> None:
    control(upstream, "mutate", {"count": 25})
    seqs, after, more = [], 0, True
    while more:
        body = feed(upstream, after, limit=10).json()
        seqs += [e["seq"] for e in body["events"]]
        after, more = seqs[-1], body["has_more"]
    assert seqs == list(range(1, 26))
    assert feed(upstream, 25).json() == {"events": [], "has_more": False}


def test_feed_events_follow_the_contract(upstream: httpx.Client) -> None:
    control(upstream, "mutate", {"count": 30})
    control(upstream, "mutate", {"count": 5, "delete": True})
    events = feed(upstream).json()["events"]
    assert [contract_errors(e) for e in events] == [[]] * 35
    assert {e["type"] for e in events} == {"upsert", "delete"}


def test_snapshot_pages_with_tokens_and_digests_match_the_records(upstream: httpx.Client) -> None:
    # given
    control(upstream, "mutate", {"count": 300})
    control(upstream, "mutate", {"count": 40, "delete": True})
    control(upstream, "mutate", {"count": 40, "silent": True})
    # when
    records, token = [], None
    while True:
        params: dict[str, str | int] = {"limit": 7}
        if token:
            params["page_token"] = token
        body = upstream.get("/snapshot", params=params).json()
        records += body["records"]
        token = body["next_page_token"]
        if token is None:
            break
    buckets = upstream.get("/snapshot", params={"digest": 1}).json()["buckets"]
    # then
    assert buckets == independent_digests(records)
    bucket = bucket_of(records[0]["key"])
    in_bucket = upstream.get("/snapshot", params={"bucket": bucket, "limit": 1000}).json()
    assert in_bucket["records"] == [r for r in records if bucket_of(r["key"]) == bucket]
    assert in_bucket["next_page_token"] is None


def test_pages_larger_than_the_cap_are_capped_not_refused(upstream: httpx.Client) -> None:
    control(upstream, "mutate", {"count": 1200})
    body = feed(upstream, limit=5000).json()
    assert len(body["events"]) == 1000 and body["has_more"]
    assert upstream.get("/snapshot", params={"limit": 5000}).status_code == 200


def test_silent_changes_reach_the_snapshot_but_not_the_feed(upstream: httpx.Client) -> None:
    control(upstream, "mutate", {"count": 3})
    silent = control(upstream, "mutate", {"count": 4, "silent": True})["changes"]
    assert all(c["seq"] is None for c in silent)
    assert len(feed(upstream).json()["events"]) == 3
    snapshot = {r["key"]: r["version"] for r in upstream.get("/snapshot", params={"limit": 1000}).json()["records"]}
    assert all(snapshot[c["key"]] == c["version"] for c in silent)


def test_bad_query_parameters_get_a_problem_400(upstream: httpx.Client) -> None:
    cases: list[tuple[str, dict[str, str | int]]] = [
        ("/changes", {"after": "x"}),
        ("/changes", {"limit": 0}),
        ("/snapshot", {"bucket": "zz"}),
        ("/snapshot", {"page_token": "%%"}),
    ]
    for path, params in cases:
        response = upstream.get(path, params=params)
        assert response.status_code == 400
        assert response.headers["content-type"] == "application/problem+json"


# -- faults ------------------------------------------------------------------------


def test_a_missing_or_wrong_token_gets_401(upstream: httpx.Client, sim: SimulatorHandle) -> None:
    assert httpx.get(f"{sim.base_url}/changes").status_code == 401
    wrong = httpx.get(f"{sim.base_url}/snapshot", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and "bearer" in wrong.headers["www-authenticate"].lower()


def test_auth_fail_rejects_even_the_right_token(upstream: httpx.Client) -> None:
    control(upstream, "faults", {"auth_fail": True})
    assert feed(upstream).status_code == 401


def test_outage_answers_503_or_drops_the_connection(upstream: httpx.Client) -> None:
    control(upstream, "faults", {"outage": "feed"})
    assert feed(upstream).status_code == 503
    assert upstream.get("/snapshot").status_code == 503
    control(upstream, "faults", {"outage_mode": "reset"})
    with pytest.raises(httpx.TransportError):
        feed(upstream)
    control(upstream, "faults", {"outage": "push"})  # the feed is not the push stream
    assert feed(upstream).status_code == 200


def test_flapping_feed_goes_up_and_down(upstream: httpx.Client) -> None:
    control(upstream, "faults", {"flap_up_s": 0.2, "flap_down_s": 0.2, "flap_target": "feed"})
    statuses = []
    for _ in range(16):
        statuses.append(feed(upstream).status_code)
        time.sleep(0.05)
    assert statuses[0] == 200 and 503 in statuses and statuses[-8:].count(200) > 0


def test_latency_delays_responses(upstream: httpx.Client) -> None:
    control(upstream, "faults", {"latency_ms": 200})
    started = time.monotonic()
    assert feed(upstream).status_code == 200
    assert time.monotonic() - started >= 0.2


def test_timeouts_hold_the_request_longer_than_the_client_waits(upstream: httpx.Client) -> None:
    control(upstream, "faults", {"timeout_rate": 1, "timeout_s": 30})
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        upstream.get("/changes", timeout=0.3)
    assert time.monotonic() - started < 2


def test_timeout_answers_504_to_a_patient_client(upstream: httpx.Client) -> None:
    control(upstream, "faults", {"timeout_rate": 1, "timeout_s": 0.1})
    assert feed(upstream).status_code == 504


def test_rate_limit_answers_429_with_retry_after(upstream: httpx.Client) -> None:
    control(upstream, "faults", {"http_429_rate": 1, "retry_after_s": 9})
    response = feed(upstream)
    assert response.status_code == 429 and response.headers["retry-after"] == "9"


def test_server_errors_are_5xx_at_about_the_rate_asked(upstream: httpx.Client) -> None:
    control(upstream, "faults", {"http_5xx_rate": 0.5})
    statuses = [feed(upstream).status_code for _ in range(100)]
    errors = [s for s in statuses if s >= 500]
    assert set(statuses) <= {200, 500, 502, 503} and 25 < len(errors) < 75


def test_bad_json_is_a_200_that_does_not_parse(upstream: httpx.Client) -> None:
    control(upstream, "mutate", {"count": 3})
    control(upstream, "faults", {"bad_json_rate": 1})
    response = feed(upstream)
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)


def test_schema_break_puts_invalid_events_in_the_feed(upstream: httpx.Client) -> None:
    control(upstream, "mutate", {"count": 10})
    control(upstream, "faults", {"schema_break_rate": 1})
    assert all(contract_errors(e) for e in feed(upstream).json()["events"])


def test_the_control_api_is_never_faulted(upstream: httpx.Client, sim: SimulatorHandle) -> None:
    control(upstream, "faults", {"outage": "all", "outage_mode": "reset", "auth_fail": True})
    state = httpx.get(f"{sim.base_url}/_control/state", headers=CONTROL).json()
    assert state["faults"]["outage"] == "all"
    assert state["requests"] == {}


# -- control API ---------------------------------------------------------------------


def test_state_counts_requests_by_outcome(upstream: httpx.Client) -> None:
    feed(upstream)
    control(upstream, "faults", {"http_429_rate": 1})
    feed(upstream)
    state = upstream.get("/_control/state", headers=CONTROL).json()
    assert state["requests"] == {"changes.ok": 1, "changes.rate_limited": 1}


def test_a_bad_fault_patch_is_a_400_naming_the_field(upstream: httpx.Client) -> None:
    response = upstream.post("/_control/faults", json={"drop_rate": 3}, headers=CONTROL)
    assert response.status_code == 400 and "drop_rate" in response.json()["detail"]


def test_mutate_deletes_and_reports_the_changes(upstream: httpx.Client) -> None:
    control(upstream, "mutate", {"count": 5})
    deleted = control(upstream, "mutate", {"count": 2, "delete": True})
    assert [c["type"] for c in deleted["changes"]] == ["delete", "delete"] and deleted["head_seq"] == 7
    events = feed(upstream, after=5).json()["events"]
    assert [e["type"] for e in events] == ["delete", "delete"]


def test_traffic_makes_changes_on_its_own(upstream: httpx.Client, sim: SimulatorHandle) -> None:
    control(upstream, "traffic", {"mutations_per_s": 100, "delete_rate": 0.2})
    try:
        wait_for(lambda: sim.dataset.head_seq >= 20)
    finally:
        control(upstream, "traffic", {"mutations_per_s": 0})
    assert upstream.post("/_control/traffic", json={"silent_rate": 2}, headers=CONTROL).status_code == 400


def test_a_scenario_posted_to_the_control_api_switches_phases_on_time(upstream: httpx.Client) -> None:
    # given
    started = time.monotonic()
    body = control(
        upstream,
        "scenario",
        {
            "name": "blip",
            "phases": [
                {"name": "calm", "duration_s": 0.3},
                {"name": "down", "duration_s": 0.3, "faults": {"outage": "feed"}},
                {"name": "back", "duration_s": 0.3},
            ],
        },
    )
    assert body["scenario"]["phase"] == "calm"

    # when / then
    def phase() -> str:
        scenario = upstream.get("/_control/state", headers=CONTROL).json()["scenario"]
        return scenario["phase"] if scenario else "ended"

    seen: list[tuple[float, str, int]] = []
    while time.monotonic() - started < 1.1:
        before, status, after = phase(), feed(upstream).status_code, phase()
        if before == after:  # else the phase changed mid-sample: no verdict
            seen.append((time.monotonic() - started, before, status))
        time.sleep(0.02)
    phases = [p for _, p, _ in seen]
    assert [p for i, p in enumerate(phases) if i == 0 or phases[i - 1] != p] == ["calm", "down", "back", "ended"]
    first_down = next(t for t, p, _ in seen if p == "down")
    assert 0.25 <= first_down <= 0.45
    assert {s for _, p, s in seen if p == "down"} == {503}
    assert {s for _, p, s in seen if p in ("calm", "back")} == {200}


def test_an_invalid_scenario_is_a_400_and_stop_ends_a_running_one(upstream: httpx.Client) -> None:
    assert upstream.post("/_control/scenario", json={"phases": []}, headers=CONTROL).status_code == 400
    control(upstream, "scenario", [{"name": "long", "duration_s": 60, "faults": {"outage": "feed"}}])
    assert control(upstream, "scenario", {"stop": True})["scenario"] is None
    assert feed(upstream).status_code == 200


def test_reset_clears_faults_and_optionally_the_dataset(upstream: httpx.Client) -> None:
    control(upstream, "mutate", {"count": 3})
    control(upstream, "faults", {"http_5xx_rate": 1})
    kept = control(upstream, "reset")
    assert kept["faults"]["http_5xx_rate"] == 0 and kept["dataset"]["head_seq"] == 3
    emptied = control(upstream, "reset", {"dataset": True})
    assert emptied["dataset"]["head_seq"] == 0 and emptied["dataset"]["generation"] >= 1


def test_unknown_routes_and_methods_are_problems(upstream: httpx.Client) -> None:
    assert upstream.get("/nope").status_code == 404
    assert upstream.post("/changes").status_code == 405
    assert upstream.get("/_control/faults", headers=CONTROL).status_code == 405
    assert upstream.post("/_control/nope", json={}, headers=CONTROL).status_code == 404


# -- the control token ---------------------------------------------------------------


def test_the_control_api_refuses_a_request_without_the_control_token(upstream: httpx.Client) -> None:
    # the upstream's own token is not the control token
    for headers in ({}, {"Authorization": f"Bearer {TOKEN}"}, {"Authorization": f"Bearer {CONTROL_TOKEN}x"}):
        response = httpx.post(f"{upstream.base_url}/_control/faults", json={"outage": "all"}, headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["www-authenticate"] == "Bearer"
    assert httpx.get(f"{upstream.base_url}/_control/state").status_code == 401
    # nothing was changed by the refused requests
    assert upstream.get("/_control/state", headers=CONTROL).json()["faults"]["outage"] == "none"


def test_a_simulator_started_without_a_control_token_gets_one_of_its_own() -> None:
    with start_in_thread() as first, start_in_thread() as second:
        assert len(first.control_token) >= 32 and first.control_token != second.control_token
        assert httpx.get(f"{first.base_url}/_control/state").status_code == 401
        assert httpx.get(f"{first.base_url}/_control/state", headers=second.control_headers).status_code == 401
        assert httpx.get(f"{first.base_url}/_control/state", headers=first.control_headers).status_code == 200
