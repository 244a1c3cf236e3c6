"""The strategy-configs and experiments API: versions, diff, rollback, experiments; tenant isolation."""

from __future__ import annotations

from typing import Any

from django_tenants.utils import tenant_context

from engines.models import Source
from tests.conftest import Persona
from tests.factories import make_source


def _version(client: Any, params: dict[str, Any], reason: str = "test", config: str = "default") -> dict[str, Any]:
    response = client.post(
        "/api/v1/strategy-configs", {"config": config, "params": params, "reason": reason}, format="json"
    )
    assert response.status_code == 201, response.content
    return response.json()


def _sources(persona: Persona, n: int) -> list[int]:
    with tenant_context(persona.tenant):
        return [make_source(f"s{i}", connector="http" if i % 2 else "simulator")[0].pk for i in range(n)]


def test_a_version_names_what_changes_and_holds_every_parameter(alice: Persona) -> None:
    # when
    first = _version(alice.client(), {"hysteresis": {"fail_threshold": 4}}, reason="calmer")
    second = _version(alice.client(), {"hysteresis": {"min_dwell_s": 20}}, reason="longer dwell")
    # then
    assert (first["number"], second["number"]) == (1, 2)
    assert second["params"]["hysteresis"]["fail_threshold"] == 4  # carried from v1
    assert second["params"]["hysteresis"]["min_dwell_s"] == 20
    assert second["params"]["health"]["silence_tolerance"] == 3.0
    assert second["author"].startswith("api_key:") and second["reason"] == "longer dwell"


def test_invalid_parameters_are_a_problem_with_field_paths_and_nothing_is_stored(alice: Persona) -> None:
    response = alice.client().post(
        "/api/v1/strategy-configs",
        {"config": "fresh", "params": {"hysteresis": {"fail_threshold": 0}}, "reason": "bad"},
        format="json",
    )
    assert response.status_code == 422
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["errors"][0]["field"] == "params.hysteresis.fail_threshold"
    listing = alice.client().get("/api/v1/strategy-configs?config=fresh").json()
    assert listing["results"] == []


def test_the_diff_names_each_changed_field_and_a_rollback_is_a_new_equal_version(alice: Persona) -> None:
    client = alice.client()
    _version(client, {})
    _version(client, {"hysteresis": {"fail_threshold": 2}, "poll": {"max_interval_s": 30}})
    # when
    diff = client.get("/api/v1/strategy-configs/default/diff?from=1&to=2").json()
    back = client.post("/api/v1/strategy-configs/default/rollback", {"to": 1, "reason": "too twitchy"}, format="json")
    # then
    assert [c["field"] for c in diff["changes"]] == ["hysteresis.fail_threshold", "poll.max_interval_s"]
    assert back.status_code == 201
    assert back.json()["number"] == 3 and back.json()["restores"] == 1
    assert client.get("/api/v1/strategy-configs/default/diff?from=1&to=3").json()["changes"] == []


def test_assigning_a_version_writes_its_parameters_on_the_source_and_stamps_it(alice: Persona) -> None:
    # given
    (source_id,) = _sources(alice, 1)
    version = _version(alice.client(), {"hysteresis": {"fail_threshold": 5}, "poll": {"min_interval_s": 2}})
    # when
    response = alice.client().post(
        "/api/v1/strategy-configs/default/versions/1/assign", {"scope": "tenant"}, format="json"
    )
    # then
    assert response.status_code == 200
    with tenant_context(alice.tenant):
        source = Source.objects.get(pk=source_id)
    assert source.strategy_version_id == version["id"]
    assert source.hysteresis["fail_threshold"] == 5
    assert source.poll["min_interval_s"] == 2 and source.poll["page_budget"] == 20  # its own budget kept


def test_an_experiment_splits_the_sources_and_stopping_it_puts_them_back(alice: Persona) -> None:
    # given
    ids = _sources(alice, 8)
    control = _version(alice.client(), {})
    treatment = _version(alice.client(), {"hysteresis": {"fail_threshold": 1}})
    # when
    started = alice.client().post(
        "/api/v1/experiments",
        {"name": "twitchy", "control": control["id"], "treatment": treatment["id"], "metric": "time_to_detect"},
        format="json",
    )
    # then
    assert started.status_code == 201, started.content
    body = started.json()
    assert body["arms"] == {"control": 4, "treatment": 4}
    assert all(abs(c.get("treatment", 0) - c.get("control", 0)) <= 1 for c in body["strata"].values())
    with tenant_context(alice.tenant):
        stamped = set(Source.objects.filter(pk__in=ids).values_list("strategy_version_id", flat=True))
    assert stamped == {control["id"], treatment["id"]}
    # a second one is refused while it runs
    again = alice.client().post(
        "/api/v1/experiments",
        {"name": "again", "control": control["id"], "treatment": treatment["id"], "metric": "time_to_detect"},
        format="json",
    )
    assert again.status_code == 409
    # when
    stopped = alice.client().post(f"/api/v1/experiments/{body['id']}/stop", {"reason": "enough"}, format="json")
    # then
    assert stopped.json()["status"] == "stopped"
    with tenant_context(alice.tenant):
        assert set(Source.objects.filter(pk__in=ids).values_list("strategy_version_id", flat=True)) == {None}
        # the treatment's fail_threshold is gone with it: each source has its own parameters back
        assert {
            h["fail_threshold"] for h in Source.objects.filter(pk__in=ids).values_list("hysteresis", flat=True)
        } == {3}
    promote = alice.client().post(f"/api/v1/experiments/{body['id']}/promote", {}, format="json")
    assert promote.status_code == 409


def test_an_experiment_needs_two_versions_and_a_known_metric(alice: Persona) -> None:
    _sources(alice, 2)
    v = _version(alice.client(), {})
    same = alice.client().post(
        "/api/v1/experiments",
        {"name": "x", "control": v["id"], "treatment": v["id"], "metric": "time_to_detect"},
        format="json",
    )
    unknown = alice.client().post(
        "/api/v1/experiments", {"name": "x", "control": v["id"], "treatment": 999999, "metric": "bogus"}, format="json"
    )
    assert same.status_code == 422 and unknown.status_code == 400
    assert same["Content-Type"] == unknown["Content-Type"] == "application/problem+json"


def test_another_tenants_versions_and_experiments_are_not_found(alice: Persona, charlie: Persona) -> None:
    # given
    _sources(alice, 4)
    a = _version(alice.client(), {})
    b = _version(alice.client(), {"hysteresis": {"fail_threshold": 2}})
    started = (
        alice.client()
        .post(
            "/api/v1/experiments",
            {"name": "mine", "control": a["id"], "treatment": b["id"], "metric": "switches_per_hour"},
            format="json",
        )
        .json()
    )
    theirs = charlie.client()
    # then
    assert theirs.get("/api/v1/strategy-configs").json()["results"] == []
    assert theirs.get("/api/v1/strategy-configs/default/versions/1").status_code == 404
    assert theirs.get("/api/v1/strategy-configs/default/diff?from=1&to=2").status_code == 404
    assert (
        theirs.post("/api/v1/strategy-configs/default/rollback", {"to": 1, "reason": "x"}, format="json").status_code
        == 404
    )
    assert theirs.get("/api/v1/experiments").json()["results"] == []
    assert theirs.get(f"/api/v1/experiments/{started['id']}").status_code == 404
    assert theirs.post(f"/api/v1/experiments/{started['id']}/stop", {}, format="json").status_code == 404
    # charlie cannot use alice's version ids either
    refused = theirs.post(
        "/api/v1/experiments",
        {"name": "borrowed", "control": a["id"], "treatment": b["id"], "metric": "time_to_detect"},
        format="json",
    )
    assert refused.status_code == 422


def test_the_endpoints_are_in_the_openapi_with_their_bodies(alice: Persona) -> None:
    schema = alice.client().get("/api/schema/?format=json").json()
    paths = schema["paths"]
    assert "/api/v1/strategy-configs" in paths and "/api/v1/experiments/{experiment_id}" in paths
    ok = paths["/api/v1/experiments/{experiment_id}"]["get"]["responses"]["200"]
    assert "ExperimentOut" in str(ok)


def test_a_source_created_after_the_tenant_chose_a_default_follows_it(alice: Persona) -> None:
    # given
    version = _version(alice.client(), {"hysteresis": {"fail_threshold": 6}})
    alice.client().post("/api/v1/strategy-configs/default/versions/1/assign", {"scope": "tenant"}, format="json")
    # when
    created = alice.client().post(
        "/api/v1/sources",
        {"name": "later", "connector": "http", "config": {"poll_url": "http://127.0.0.1:9/changes"}},
        format="json",
    )
    # then
    assert created.status_code == 201, created.content
    assert created.json()["hysteresis"]["fail_threshold"] == 6
    with tenant_context(alice.tenant):
        assert Source.objects.get(pk=created.json()["id"]).strategy_version_id == version["id"]
