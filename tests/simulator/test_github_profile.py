"""The simulator's `github` profile over HTTP: GitHub's issues API and issues webhooks, with the faults."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from simulator.runner import SimulatorHandle, start_in_thread
from tests.simulator.support import NativeReceiver, serve_asgi, wait_for
from tests.upstream_fixtures import upstream_fixture  # noqa: F401  (the `upstream` fixture)
from tests.upstream_packages import UpstreamSigner

TOKEN = "ghp_simulated"
SECRET = "It's a Secret to Everybody"
ISSUES = "/repos/octo-org/hello/issues"
RFC3339_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
ID_BASE = 2_100_000_000


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorHandle]:
    with start_in_thread(
        token=TOKEN, seed=5, profile="github", profile_options={"owner": "octo-org", "repo": "hello"}
    ) as handle:
        yield handle


@pytest.fixture
def github(sim: SimulatorHandle) -> Iterator[httpx.Client]:
    """A client as the rest connector's github-issues preset would be, on a clean simulator."""
    sim.sim.reset(dataset=True)
    control(sim, "profile", {"rate_limit": 5000, "rate_window_s": 3600, "rate_limit_status": 403})
    headers = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/vnd.github+json"}
    with httpx.Client(base_url=sim.base_url, headers=headers, timeout=3.0) as client:
        yield client
    sim.sim.reset(dataset=True)


def control(sim: SimulatorHandle, route: str, body: Any = None) -> Any:
    response = httpx.post(
        f"{sim.base_url}/_control/{route}",
        json=body if body is not None else {},
        headers=sim.control_headers,
        timeout=3,
    )
    assert response.status_code == 200, response.text
    return response.json()


def list_all(client: httpx.Client, **params: Any) -> tuple[list[dict[str, Any]], int]:
    """Every page, following `Link: rel="next"` as a GitHub client does; returns the issues and the page count."""
    query = {"state": "all", "sort": "updated", "direction": "asc", "per_page": 100} | params
    response = client.get(ISSUES, params=query)
    issues, pages = [], 0
    while True:
        assert response.status_code == 200, response.text
        issues += response.json()
        pages += 1
        following = response.links.get("next")
        if following is None:
            return issues, pages
        response = client.get(following["url"])


# -- the API's shape ---------------------------------------------------------------------


def test_the_issues_list_is_github_shaped(sim: SimulatorHandle, github: httpx.Client) -> None:
    # given
    control(sim, "mutate", {"count": 12})
    # when
    response = github.get(ISSUES, params={"state": "all", "per_page": 100})
    # then
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/json")
    issues = response.json()
    assert isinstance(issues, list) and issues
    for issue in issues:
        assert isinstance(issue["id"], int) and not isinstance(issue["id"], bool)
        assert issue["number"] == issue["id"] - ID_BASE + 1
        assert isinstance(issue["title"], str) and issue["title"]
        assert issue["state"] in ("open", "closed")
        assert issue["body"] is None or isinstance(issue["body"], str)
        assert isinstance(issue["user"]["login"], str) and isinstance(issue["user"]["id"], int)
        assert all({"id", "name", "color"} <= set(label) for label in issue["labels"])
        assert RFC3339_Z.match(issue["created_at"]) and RFC3339_Z.match(issue["updated_at"])
        assert issue["created_at"] <= issue["updated_at"]
        assert (issue["closed_at"] is None) == (issue["state"] == "open")
        assert issue["url"].endswith(f"/repos/octo-org/hello/issues/{issue['number']}")


def test_the_default_listing_is_open_issues_newest_created_first(sim: SimulatorHandle, github: httpx.Client) -> None:
    control(sim, "mutate", {"count": 40})
    every = github.get(ISSUES, params={"state": "all", "per_page": 100}).json()
    default = github.get(ISSUES).json()
    assert {i["state"] for i in default} == {"open"}
    assert len(default) == min(30, sum(1 for i in every if i["state"] == "open"))  # per_page 30 by default
    assert [i["created_at"] for i in default] == sorted((i["created_at"] for i in default), reverse=True)


def test_link_pagination_walks_every_issue_once_in_updated_order(sim: SimulatorHandle, github: httpx.Client) -> None:
    # given
    sim.dataset.seed_records(45)
    # when
    issues, pages = list_all(github, per_page=10)
    # then
    assert pages == 5
    assert len(issues) == len({i["id"] for i in issues}) == 45
    assert [(i["updated_at"], i["number"]) for i in issues] == sorted((i["updated_at"], i["number"]) for i in issues)
    last = github.get(ISSUES, params={"state": "all", "per_page": 10, "page": 5})
    assert "next" not in last.links and last.links["first"]["url"].endswith("page=1")
    first = github.get(ISSUES, params={"state": "all", "per_page": 10, "sort": "updated"})
    # the other parameters ride along unchanged
    assert parse_qs(urlsplit(first.links["next"]["url"]).query) == {
        "state": ["all"],
        "per_page": ["10"],
        "sort": ["updated"],
        "page": ["2"],
    }
    assert parse_qs(urlsplit(first.links["last"]["url"]).query)["page"] == ["5"]


def test_per_page_is_capped_at_100(sim: SimulatorHandle, github: httpx.Client) -> None:
    sim.dataset.seed_records(130)
    response = github.get(ISSUES, params={"state": "all", "per_page": 500})
    assert len(response.json()) == 100 and "next" in response.links


def test_since_keeps_issues_updated_at_or_after_it(sim: SimulatorHandle, github: httpx.Client) -> None:
    # given: one issue edited four times in a row; each edit stamps it a second later
    sim.dataset.seed_records(20)
    for _ in range(4):
        sim.dataset.upsert("rec-000007", {"status": "paid", "qty": 2, "price_cents": 300, "note": ""})
    hot = next(i for i in list_all(github)[0] if i["number"] == 8)
    # when
    since = github.get(ISSUES, params={"state": "all", "since": hot["updated_at"]}).json()
    # then
    assert [i["number"] for i in since] == [8]
    assert github.get(ISSUES, params={"since": "not-a-time"}).status_code == 422


def test_an_issue_renders_the_same_in_the_list_and_alone(sim: SimulatorHandle, github: httpx.Client) -> None:
    control(sim, "mutate", {"count": 5})
    listed = list_all(github)[0][0]
    alone = github.get(f"{ISSUES}/{listed['number']}")
    assert alone.status_code == 200 and alone.json() == listed
    assert github.get(f"{ISSUES}/999999").status_code == 404


def test_an_edit_moves_updated_at_on_and_deletes_disappear(sim: SimulatorHandle, github: httpx.Client) -> None:
    # given
    sim.dataset.seed_records(10)
    before = {i["id"]: i for i in list_all(github)[0]}
    # when: one edit, one silent edit, one delete and one silent delete
    sim.dataset.upsert("rec-000001", {"status": "shipped", "qty": 3, "price_cents": 100, "note": "gift wrap"})
    sim.dataset.upsert("rec-000002", {"status": "new", "qty": 1, "price_cents": 101, "note": ""}, silent=True)
    sim.dataset.delete("rec-000003")
    sim.dataset.delete("rec-000004", silent=True)
    after = {i["id"]: i for i in list_all(github)[0]}
    # then
    assert set(before) - set(after) == {ID_BASE + 3, ID_BASE + 4}
    edited = after[ID_BASE + 1]
    assert edited["updated_at"] > before[ID_BASE + 1]["updated_at"]
    assert edited["state"] == "closed" and edited["state_reason"] == "completed" and edited["body"] == "gift wrap"
    assert after[ID_BASE + 2]["updated_at"] > before[ID_BASE + 2]["updated_at"]  # silent: no webhook, still listed


# -- ETag, rate limits, credentials ------------------------------------------------------------


def test_if_none_match_answers_304_without_spending_the_budget(sim: SimulatorHandle, github: httpx.Client) -> None:
    # given
    sim.dataset.seed_records(5)
    params = {"state": "all", "since": "2020-01-01T00:00:00Z"}
    first = github.get(ISSUES, params=params)
    etag = first.headers["etag"]
    remaining = int(first.headers["x-ratelimit-remaining"])
    # when
    again = github.get(ISSUES, params=params, headers={"If-None-Match": etag})
    # then
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    assert int(again.headers["x-ratelimit-remaining"]) == remaining
    assert sim.sim.requests["issues.not_modified"] == 1
    # and after a change the same ETag gets the new list
    sim.dataset.upsert("rec-000000", {"status": "paid", "qty": 9, "price_cents": 9, "note": ""})
    changed = github.get(ISSUES, params=params, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag


def test_the_rate_limit_budget_is_counted_and_enforced_per_window(sim: SimulatorHandle, github: httpx.Client) -> None:
    # given
    control(sim, "profile", {"rate_limit": 3, "rate_window_s": 60})
    # when
    answers = [github.get(ISSUES) for _ in range(4)]
    # then
    assert [a.status_code for a in answers] == [200, 200, 200, 403]
    assert [a.headers["x-ratelimit-remaining"] for a in answers] == ["2", "1", "0", "0"]
    assert {a.headers["x-ratelimit-limit"] for a in answers} == {"3"}
    reset = int(answers[3].headers["x-ratelimit-reset"])
    assert time.time() < reset <= time.time() + 61
    assert "rate limit exceeded" in answers[3].json()["message"]
    assert sim.sim.requests["issues.over_limit"] == 1 and sim.sim.requests["issues.ok"] == 3
    profile = httpx.get(f"{sim.base_url}/_control/profile", headers=sim.control_headers).json()["profile"]
    assert profile["rate_refused"] == 1


def test_a_new_window_serves_again_and_429_can_be_chosen(sim: SimulatorHandle, github: httpx.Client) -> None:
    # given
    control(sim, "profile", {"rate_limit": 1, "rate_window_s": 1, "rate_limit_status": 429})
    assert github.get(ISSUES).status_code == 200
    refused = github.get(ISSUES)
    assert refused.status_code == 429 and refused.headers["x-ratelimit-remaining"] == "0"
    # when: the reset passes
    reset = int(refused.headers["x-ratelimit-reset"])
    wait_for(lambda: time.time() >= reset, timeout=3)
    # then
    wait_for(lambda: github.get(ISSUES).status_code == 200, timeout=3, interval=0.2)


def test_a_wrong_token_gets_401_bad_credentials(sim: SimulatorHandle, github: httpx.Client) -> None:
    wrong = httpx.get(f"{sim.base_url}{ISSUES}", headers={"Authorization": "Bearer nope"})
    missing = httpx.get(f"{sim.base_url}{ISSUES}")
    classic = httpx.get(f"{sim.base_url}{ISSUES}", headers={"Authorization": f"token {TOKEN}"})
    assert (wrong.status_code, missing.status_code, classic.status_code) == (401, 401, 200)
    assert wrong.json()["message"] == "Bad credentials"
    # and a rotated credential (the auth_fail fault) refuses the right token too
    control(sim, "faults", {"auth_fail": True})
    assert github.get(ISSUES).status_code == 401


def test_another_repository_is_not_found(github: httpx.Client) -> None:
    response = github.get("/repos/octo-org/other/issues")
    assert response.status_code == 404 and response.json()["message"] == "Not Found"
    assert github.get("/changes").status_code == 404  # the default profile's routes are not served


# -- the faults apply ------------------------------------------------------------------------


def test_outage_5xx_secondary_limit_and_truncated_bodies(sim: SimulatorHandle, github: httpx.Client) -> None:
    control(sim, "mutate", {"count": 20})
    control(sim, "faults", {"outage": "feed"})
    assert github.get(ISSUES).status_code == 503
    control(sim, "faults", {"outage": "none", "http_429_rate": 1.0, "retry_after_s": 7})
    limited = github.get(ISSUES)
    assert limited.status_code == 429 and limited.headers["retry-after"] == "7"
    control(sim, "faults", {"http_429_rate": 0.0, "http_5xx_rate": 1.0})
    assert github.get(ISSUES).status_code in (500, 502, 503)
    control(sim, "faults", {"http_5xx_rate": 0.0, "bad_json_rate": 1.0})
    cut = github.get(ISSUES, params={"state": "all"})
    assert cut.status_code == 200
    with pytest.raises(ValueError):
        cut.json()


def test_schema_breaks_make_listed_issues_unreadable(sim: SimulatorHandle, github: httpx.Client) -> None:
    control(sim, "mutate", {"count": 20})
    control(sim, "faults", {"schema_break_rate": 1.0})
    issues = github.get(ISSUES, params={"state": "all"}).json()
    assert issues and all("id" not in i or not RFC3339_Z.match(str(i["updated_at"])) for i in issues)


def test_a_timeout_holds_the_request_then_504(sim: SimulatorHandle, github: httpx.Client) -> None:
    control(sim, "faults", {"timeout_rate": 1.0, "timeout_s": 0.3})
    started = time.monotonic()
    response = github.get(ISSUES)
    assert response.status_code == 504 and time.monotonic() - started >= 0.3


# -- control API ----------------------------------------------------------------------------


def test_mutate_names_the_issue_ids_a_receiver_stores(sim: SimulatorHandle, github: httpx.Client) -> None:
    changes = control(sim, "mutate", {"count": 3})["changes"]
    listed = {str(i["id"]) for i in list_all(github)[0]}
    assert {c["upstream_key"] for c in changes} <= listed
    state = httpx.get(f"{sim.base_url}/_control/state", headers=sim.control_headers).json()
    assert state["profile"]["name"] == "github" and state["profile"]["repo"] == "hello"


def test_profile_settings_are_validated(sim: SimulatorHandle) -> None:
    url, headers = f"{sim.base_url}/_control/profile", sim.control_headers
    response = httpx.post(url, json={"rate_limit_status": 500}, headers=headers)
    assert response.status_code == 400 and "403 or 429" in response.json()["detail"]
    response = httpx.post(url, json={"colour": "red"}, headers=headers)
    assert response.status_code == 400


# -- webhooks -----------------------------------------------------------------------------


@pytest.fixture
def hooks() -> Iterator[tuple[SimulatorHandle, NativeReceiver]]:
    receiver = NativeReceiver()
    with (
        serve_asgi(receiver) as url,
        start_in_thread(
            ingest_url=f"{url}/api/v1/sources/1/events",
            webhook_secret=SECRET,
            token=TOKEN,
            profile="github",
            profile_options={"owner": "octo-org", "repo": "hello"},
            run_id="gh1",
        ) as handle,
    ):
        yield handle, receiver


def issues_hooks(receiver: NativeReceiver) -> list[Any]:
    return [d for d in receiver.received() if d.headers["x-github-event"] == "issues"]


def test_webhooks_are_githubs_issues_events_signed_as_github_signs(
    hooks: tuple[SimulatorHandle, NativeReceiver], upstream: UpstreamSigner
) -> None:
    # given
    handle, receiver = hooks
    ds = handle.dataset
    # when: opened, edited, closed, reopened, deleted
    ds.upsert("rec-000010", {"status": "new", "qty": 1, "price_cents": 1, "note": ""})
    ds.upsert("rec-000010", {"status": "new", "qty": 1, "price_cents": 2, "note": "rush"})
    ds.upsert("rec-000010", {"status": "shipped", "qty": 1, "price_cents": 2, "note": "rush"})
    ds.upsert("rec-000010", {"status": "paid", "qty": 1, "price_cents": 2, "note": "rush"})
    ds.delete("rec-000010")
    wait_for(lambda: len(issues_hooks(receiver)) == 5 and handle.sim.push.events_sent == 5)
    # then
    deliveries = issues_hooks(receiver)
    bodies = [d.json() for d in deliveries]
    assert [b["action"] for b in bodies] == ["opened", "edited", "closed", "reopened", "deleted"]
    assert bodies[1]["changes"] == {"title": {"from": bodies[0]["issue"]["title"]}, "body": {"from": None}}
    assert {b["issue"]["id"] for b in bodies} == {ID_BASE + 10}
    stamps = [b["issue"]["updated_at"] for b in bodies]
    assert stamps == sorted(stamps) and len(set(stamps)) == 5  # a version read from updated_at always grows
    assert all(b["repository"]["full_name"] == "octo-org/hello" and b["sender"]["login"] for b in bodies)
    assert len({d.headers["x-github-delivery"] for d in deliveries}) == 5
    assert all(re.fullmatch(r"[0-9a-f-]{36}", d.headers["x-github-delivery"]) for d in deliveries)
    assert all("x-beastflow-signature" not in d.headers for d in deliveries)
    # signed as @octokit/webhooks-methods signs (pings too)
    for delivery in receiver.received():
        assert delivery.headers["x-hub-signature-256"] == upstream.sign_github(SECRET, delivery.body.decode())
    assert deliveries[0].headers["x-hub-signature-256"] != upstream.sign_github("other", deliveries[0].body.decode())
    # shaped as GitHub's own published examples of these actions
    examples = {e["action"]: e for e in upstream.github_examples("issues")}
    for body in bodies:
        example = examples.get(body["action"], examples["opened"])  # no published "closed" example
        assert set(body) <= set(example) | {"changes"}, body["action"]
        assert set(example["issue"]) - {"draft", "pull_request"} <= set(body["issue"]), body["action"]
        assert {type(body["issue"][k]) for k in ("id", "number", "created_at")} == {
            type(example["issue"][k]) for k in ("id", "number", "created_at")
        }
        assert set(example["issue"]["user"]) <= set(body["issue"]["user"])


def test_a_ping_comes_first_and_pings_are_not_counted_as_events(
    hooks: tuple[SimulatorHandle, NativeReceiver], upstream: UpstreamSigner
) -> None:
    handle, receiver = hooks
    wait_for(lambda: handle.sim.push.heartbeats >= 1)
    first = receiver.received()[0]
    assert first.headers["x-github-event"] == "ping"
    assert set(first.json()) == set(upstream.github_examples("ping")[0])
    assert handle.sim.push.events_sent == 0


def test_a_webhook_carries_the_issue_as_the_api_lists_it(hooks: tuple[SimulatorHandle, NativeReceiver]) -> None:
    handle, receiver = hooks
    handle.sim.mutate(count=8)
    wait_for(lambda: handle.sim.push.events_sent == 8)
    pushed = {}
    for delivery in issues_hooks(receiver):
        issue = delivery.json()["issue"]
        pushed[issue["id"]] = issue  # the last push of each issue
    with httpx.Client(base_url=handle.base_url, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        listed = {i["id"]: i for i in list_all(client)[0]}
    assert pushed == listed


def test_push_faults_drop_duplicate_and_silence_webhooks(hooks: tuple[SimulatorHandle, NativeReceiver]) -> None:
    handle, receiver = hooks
    # dropped: the issue changes, no webhook says so
    handle.faults.update({"drop_rate": 1.0})
    handle.sim.mutate(count=5)
    wait_for(lambda: handle.sim.push.dropped == 5)
    assert issues_hooks(receiver) == []
    # duplicated: the same delivery id twice, as a redelivery
    handle.faults.update({"drop_rate": 0.0, "duplicate_rate": 1.0})
    handle.sim.mutate(count=1)
    wait_for(lambda: len(issues_hooks(receiver)) == 2)
    first, second = issues_hooks(receiver)
    assert first.headers["x-github-delivery"] == second.headers["x-github-delivery"] and first.body == second.body
    # push outage: nothing at all, not even a ping
    handle.faults.update({"duplicate_rate": 0.0, "outage": "push"})
    sent = len(receiver.received())
    handle.sim.mutate(count=3)
    wait_for(lambda: handle.sim.push.lost_down == 3)
    assert len(receiver.received()) == sent
    # schema break: a signed webhook whose issue a mapping cannot read
    handle.faults.update({"outage": "none", "schema_break_rate": 1.0})
    handle.sim.mutate(count=1)
    wait_for(lambda: handle.sim.push.broken == 1 and len(issues_hooks(receiver)) == 3)
    issue = issues_hooks(receiver)[-1].json()["issue"]
    assert "id" not in issue or not RFC3339_Z.match(str(issue["updated_at"]))
