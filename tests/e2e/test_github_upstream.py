"""A GitHub-shaped upstream end to end: real web server, worker, beat, and the simulator's github profile.

The source is made from the `github-issues` preset exactly as a tenant
would make one for a real repository (base URL, owner, repo, token, webhook
secret); the simulator serves the issues API (Link pages, ETags, rate-limit
headers) and pushes natively signed `issues` webhooks, no seq, no
heartbeat. The tests drive the simulator's faults through its control API
and watch the source through the database. Figures are printed (pytest -s)
and asserted only against generous bounds.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from django.db import connection
from django_tenants.utils import tenant_context

from engines.connectors.mapping import parse_timestamp, to_microseconds
from engines.ingest.plan import record_hash
from engines.models import Change, ModeSwitch, PollRun, ReconciliationRun, Record, Source
from simulator.runner import SimulatorHandle, start_in_thread
from tests.conftest import Persona
from tests.stack import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("celery_beat")]

TOKEN = "ghp_e2e_simulated"
SECRET = "webhook secret set on the repository"
OWNER, REPO = "octo-org", "hello"
AUDIT_S = 2.0


def wait_until(what: str, check: Callable[[], Any], timeout_s: float, diagnosis: Callable[[], str] = str) -> float:
    """Seconds until `check()` is truthy; fails after `timeout_s` saying what was awaited."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"not {what} within {timeout_s}s; {diagnosis()}")
        time.sleep(0.1)
    return time.monotonic() - started


@dataclass
class Repo:
    """The source, its simulated repository, and ways to look at both."""

    tenant: Any
    source_id: int
    sim: SimulatorHandle
    blocker: Any
    api: httpx.Client  # BeastFlow's API as the tenant

    def control(self, route: str, body: dict[str, Any]) -> Any:
        response = httpx.post(
            f"{self.sim.base_url}/_control/{route}", json=body, headers=self.sim.control_headers, timeout=5
        )
        assert response.status_code == 200, response.text
        return response.json()

    def query(self, read: Callable[[], Any]) -> Any:
        with self.blocker.unblock(), tenant_context(self.tenant):
            try:
                return read()
            finally:
                connection.close()

    def mode(self) -> str:
        return str(self.query(lambda: Source.objects.values_list("mode", flat=True).get(pk=self.source_id)))

    def requests(self, name: str) -> int:
        return int(self.sim.sim.requests[name])

    def diagnosis(self) -> str:
        runs = self.query(
            lambda: list(
                PollRun.objects.filter(source_id=self.source_id)
                .order_by("-started_at")
                .values_list("trigger", "status", "missed", "new_events", "error_kind", "error")[:5]
            )
        )
        source = self.query(lambda: Source.objects.values("mode", "hysteresis_state").get(pk=self.source_id))
        reconciliations = self.query(
            lambda: list(
                ReconciliationRun.objects.filter(source_id=self.source_id)
                .order_by("-started_at")
                .values_list("status", "deleted", "error_kind", "error")[:3]
            )
        )
        return (
            f"polls {runs}; reconciliations {reconciliations}; source {source}; "
            f"simulator {dict(self.sim.sim.requests)} push {self.sim.sim.push}"
        )

    def wait_mode(self, mode: str, timeout_s: float) -> float:
        return wait_until(f"in {mode}", lambda: self.mode() == mode, timeout_s, self.diagnosis)

    def upstream(self) -> dict[str, tuple[int, str]]:
        """The repository's issues as GitHub lists them: issue id -> (updated_at in µs, hash of the issue)."""
        issues: dict[str, tuple[int, str]] = {}
        headers = {"Authorization": f"Bearer {TOKEN}"}
        url: str | None = f"{self.sim.base_url}/repos/{OWNER}/{REPO}/issues?state=all&per_page=100"
        while url:
            response = httpx.get(url, headers=headers, timeout=5)
            assert response.status_code == 200, response.text
            for issue in response.json():
                version = to_microseconds(parse_timestamp(issue["updated_at"]))
                issues[str(issue["id"])] = (version, record_hash(issue))
            url = response.links.get("next", {}).get("url")
        return issues

    def local(self) -> dict[str, tuple[int, str]]:
        rows = self.query(
            lambda: list(
                Record.objects.filter(source_id=self.source_id, deleted=False).values_list("key", "version", "hash")
            )
        )
        return {key: (version, digest) for key, version, digest in rows}

    def differing(self) -> int:
        upstream, local = self.upstream(), self.local()
        return sum(1 for k in upstream.keys() | local.keys() if upstream.get(k) != local.get(k))

    def switches(self) -> list[tuple[str, str]]:
        return self.query(
            lambda: list(
                ModeSwitch.objects.filter(source_id=self.source_id)
                .order_by("at", "id")
                .values_list("from_mode", "to_mode")
            )
        )

    def arrived(self, key: str, version: int) -> str | None:
        """The origin of the change that brought `key` at `version`, once it is here."""
        return self.query(
            lambda: (
                Change.objects.filter(source_id=self.source_id, key=key, version=version)
                .values_list("origin", flat=True)
                .first()
            )
        )


def make_source(tenant: Any, blocker: Any, port: int, *, reconcile_s: float) -> int:
    from engines import sources

    body = {
        "name": f"gh-e2e-{uuid.uuid4().hex[:8]}",
        "preset": "github-issues",
        "config": {
            "base_url": f"http://127.0.0.1:{port}",
            "owner": OWNER,
            "repo": REPO,
            "headers": {"Authorization": f"Bearer {TOKEN}"},
            "timeout_s": 3,
        },
        "push": {"secret": SECRET},
        "poll": {"min_interval_s": 0.5, "max_interval_s": 2, "audit_interval_s": AUDIT_S},
        "hysteresis": {
            "fail_threshold": 2,
            "recover_threshold": 3,
            "min_dwell_s": 3,
            "max_dwell_s": 30,
            "validation_window_s": 3,
        },
        "reconcile": {"interval_s": reconcile_s, "max_change_ratio": 0.5},
    }
    with blocker.unblock(), tenant_context(tenant):
        source, _ = sources.source_create(spec=sources.parse_spec(body))
    return int(source.pk)


@pytest.fixture
def repo_factory(
    personas: dict[str, Persona], live_server_url: str, django_db_blocker: Any
) -> Iterator[Callable[..., Repo]]:
    from engines import sources

    made: list[Repo] = []

    def make(*, reconcile_s: float = 0) -> Repo:  # 0: reconciliation only when asked
        tenant = personas["alice"].tenant
        port = free_port()
        source_id = make_source(tenant, django_db_blocker, port, reconcile_s=reconcile_s)
        sim = start_in_thread(
            port=port,
            ingest_url=f"{live_server_url}/api/v1/sources/{source_id}/events",
            webhook_secret=SECRET,
            token=TOKEN,
            mutations_per_s=0.0,
            key_space=80,
            seed=11,
            run_id=uuid.uuid4().hex[:6],
            profile="github",
            profile_options={"owner": OWNER, "repo": REPO},
        )
        api = httpx.Client(
            base_url=live_server_url, headers={"Authorization": f"Bearer {personas['alice'].api_key}"}, timeout=10
        )
        repo = Repo(tenant=tenant, source_id=source_id, sim=sim, blocker=django_db_blocker, api=api)
        made.append(repo)
        return repo

    try:
        yield make
    finally:
        for repo in made:
            repo.sim.stop()
            repo.api.close()
            with django_db_blocker.unblock(), tenant_context(repo.tenant):
                found = Source.objects.filter(pk=repo.source_id).first()
                if found is not None:
                    sources.source_delete(source=found)


def healthy(repo: Repo) -> None:
    """Issues opened and delivered by webhook, the first audit done, the source in event mode."""
    repo.control("mutate", {"count": 20})
    wait_until("delivered", lambda: repo.differing() == 0, 20, repo.diagnosis)
    wait_until(
        "audited",
        lambda: repo.query(lambda: PollRun.objects.filter(source_id=repo.source_id, trigger="audit").exists()),
        15,
        repo.diagnosis,
    )
    assert repo.mode() == "event"


def test_dropped_webhooks_are_found_by_audits_switch_to_polling_and_recover(repo_factory: Any) -> None:
    repo: Repo = repo_factory()
    healthy(repo)
    # when: GitHub accepts changes but its deliveries are lost
    repo.control("faults", {"drop_rate": 1.0})
    change = repo.control("mutate", {"count": 1})["changes"][0]
    dropped_at = time.monotonic()
    issue = httpx.get(
        f"{repo.sim.base_url}/repos/{OWNER}/{REPO}/issues/{int(change['upstream_key']) - 2_100_000_000 + 1}",
        headers={"Authorization": f"Bearer {TOKEN}"},
    ).json()
    version = to_microseconds(parse_timestamp(issue["updated_at"]))
    # then: an audit poll brings it
    wait_until("found by an audit", lambda: repo.arrived(change["upstream_key"], version), 20, repo.diagnosis)
    to_record = time.monotonic() - dropped_at
    assert repo.arrived(change["upstream_key"], version) == "poll"
    assert repo.sim.sim.push.dropped >= 1
    # and: deliveries keep being lost, the audits keep finding them: polling
    repo.control("traffic", {"mutations_per_s": 2})
    to_polling = repo.wait_mode("polling", 40)
    audits = repo.query(
        lambda: list(
            PollRun.objects.filter(source_id=repo.source_id, trigger="audit", missed__gt=0).values_list(
                "missed", flat=True
            )
        )
    )
    assert audits, repo.diagnosis()
    # when: deliveries resume
    repo.control("faults", {"drop_rate": 0.0})
    to_event = repo.wait_mode("event", 60)
    # then: nothing lost, and the switches went through hybrid both ways
    repo.control("traffic", {"mutations_per_s": 0})
    settle = wait_until("converged", lambda: repo.differing() == 0, 20, repo.diagnosis)
    print(
        f"\ndropped webhook -> record by audit poll in {to_record:.2f}s (audit every {AUDIT_S}s); "
        f"-> polling in {to_polling:.1f}s; deliveries back -> event in {to_event:.1f}s; converged {settle:.1f}s; "
        f"audits with misses {audits}; simulator {dict(repo.sim.sim.requests)}"
    )
    assert to_record < AUDIT_S + 8
    assert repo.switches()[:4] == [
        ("event", "hybrid"),
        ("hybrid", "polling"),
        ("polling", "hybrid"),
        ("hybrid", "event"),
    ]


def test_silent_deletes_go_by_reconciliation_a_rate_limit_is_honoured_and_304s_are_used(repo_factory: Any) -> None:
    repo: Repo = repo_factory()
    healthy(repo)
    # 304s: nothing changes, the audits' conditional requests are answered 304
    wait_until("answered 304", lambda: repo.requests("issues.not_modified") >= 2, 15, repo.diagnosis)
    # when: issues deleted upstream with no webhook, and a reconciliation asked for (run by the worker)
    deleted = [
        c["upstream_key"] for c in repo.control("mutate", {"count": 3, "delete": True, "silent": True})["changes"]
    ]
    asked = repo.api.post(f"/api/v1/sources/{repo.source_id}/reconcile", json={})
    assert asked.status_code in (200, 201, 202), asked.text
    took = wait_until("reconciled", lambda: not (set(deleted) & repo.local().keys()), 30, repo.diagnosis)
    # then: reconciliation removed them (no webhook nor since-query could)
    runs = repo.query(
        lambda: list(ReconciliationRun.objects.filter(source_id=repo.source_id, deleted__gt=0).values_list("deleted"))
    )
    assert runs, repo.diagnosis()
    removals = repo.query(
        lambda: set(
            Change.objects.filter(source_id=repo.source_id, key__in=deleted, type="delete").values_list("key", "origin")
        )
    )
    assert removals == {(key, "reconcile") for key in deleted}
    assert repo.differing() == 0
    # when: a budget of 3 requests per 6 s window, and the repository keeps changing
    repo.control("profile", {"rate_limit": 3, "rate_window_s": 6})
    repo.control("traffic", {"mutations_per_s": 2})
    ok_before, refused_before = repo.requests("issues.ok"), repo.requests("issues.over_limit")
    window_started = time.monotonic()
    wait_until("two windows used", lambda: repo.requests("issues.ok") - ok_before >= 7, 30, repo.diagnosis)
    elapsed = time.monotonic() - window_started
    served = repo.requests("issues.ok") - ok_before
    refused = repo.requests("issues.over_limit") - refused_before
    # then: it waited for the resets instead of hammering (a refused request is one that raced the window)
    assert elapsed >= 6, (served, refused, elapsed)
    assert refused <= 2, repo.diagnosis()
    # and once the budget is lifted, everything arrives
    repo.control("profile", {"rate_limit": 5000, "rate_window_s": 3600})
    repo.control("traffic", {"mutations_per_s": 0})
    settle = wait_until("converged", lambda: repo.differing() == 0, 30, repo.diagnosis)
    print(
        f"\nsilent deletes reconciled in {took:.1f}s; rate limit 3/6s: {served} served, {refused} refused "
        f"in {elapsed:.1f}s; converged {settle:.1f}s; 304s {repo.requests('issues.not_modified')}"
    )
