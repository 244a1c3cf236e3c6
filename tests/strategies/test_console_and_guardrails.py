"""The console's experiments page, its decisions, and the guardrails that stop an experiment at once."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone
from django_tenants.utils import tenant_context

from engines.models import Source
from healing.models import FailureRecord
from strategies import services
from strategies.models import Experiment, ExperimentStatus, TenantStrategy
from tenants.models import Role
from tests.conftest import Persona
from tests.console.conftest import host_of
from tests.factories import make_source


def _experiment(persona: Persona, n: int = 6) -> Experiment:
    with tenant_context(persona.tenant):
        for i in range(n):
            make_source(f"c{i}")
        control = services.version_create(config_name="default", params={}, author="t", reason="base")
        treatment = services.version_create(
            config_name="default", params={"hysteresis": {"fail_threshold": 1}}, author="t", reason="twitchy"
        )
        return services.experiment_start(
            name="twitchy", control=control, treatment=treatment, metric="switches_per_hour", actor="t"
        )


def test_the_console_shows_an_experiment_with_its_arms_and_result(alice: Persona, acme_console: Client) -> None:
    # given
    experiment = _experiment(alice)
    with tenant_context(alice.tenant):
        services.experiment_evaluate(experiment=experiment)
    # when
    body = acme_console.get("/experiments/").content.decode()
    # then
    assert f'id="experiment-{experiment.pk}"' in body
    assert "default v1" in body and "default v2" in body
    assert "on 3 sources" in body
    assert "Stop" in body  # alice operates acme


def test_an_operator_promotes_a_significant_winner_from_the_console(alice: Persona, acme_console: Client) -> None:
    # given: the test found the treatment better
    experiment = _experiment(alice)
    with tenant_context(alice.tenant):
        Experiment.objects.filter(pk=experiment.pk).update(status=ExperimentStatus.AWAITING_APPROVAL, p_value=0.01)
    # when
    response = acme_console.post(f"/experiments/{experiment.pk}/decide", {"decision": "promote"})
    # then
    assert response.status_code == 302
    with tenant_context(alice.tenant):
        assert Experiment.objects.get(pk=experiment.pk).status == ExperimentStatus.PROMOTED
        assert TenantStrategy.objects.get(pk=1).default_version_id == experiment.treatment_id
        assert set(Source.objects.values_list("strategy_version_id", flat=True)) == {experiment.treatment_id}


def test_a_viewer_cannot_decide_and_another_tenants_experiment_is_not_found(
    alice: Persona, charlie: Persona, member: Callable[..., User]
) -> None:
    experiment = _experiment(alice)
    bob = member("bob", alice.tenant, role=Role.VIEWER)
    viewer = Client(HTTP_HOST=host_of(alice.tenant))
    viewer.force_login(bob)
    assert viewer.post(f"/experiments/{experiment.pk}/decide", {"decision": "stop"}).status_code == 403
    other = Client(HTTP_HOST=host_of(charlie.tenant))
    other.force_login(member("charlie", charlie.tenant))
    assert f"experiment-{experiment.pk}" not in other.get("/experiments/").content.decode()
    assert other.post(f"/experiments/{experiment.pk}/decide", {"decision": "stop"}).status_code == 404


def test_a_treatment_that_flaps_beyond_the_allowance_stops_the_experiment_at_once(alice: Persona) -> None:
    # given
    experiment = _experiment(alice)
    with tenant_context(alice.tenant):
        treated = list(experiment.assignments.filter(arm="treatment").values_list("source_id", flat=True))
        now = timezone.now()
        for n, source_id in enumerate(treated):
            FailureRecord.objects.create(
                source_id=source_id,
                kind="flapping",
                fingerprint=f"flap-{n}",
                first_seen=now,
                last_seen=now,
                occurrences=3,
            )
        # when
        ended = services.experiment_evaluate(experiment=experiment)
        # then
        assert ended.status == ExperimentStatus.STOPPED
        assert ended.decided_by == "guardrail" and ended.end_reason.startswith("flaps_per_source")
        assert set(Source.objects.values_list("strategy_version_id", flat=True)) == {None}  # back on their own


def test_without_a_real_difference_nothing_is_promoted(alice: Persona) -> None:
    experiment = _experiment(alice)
    with tenant_context(alice.tenant):
        evaluated = services.experiment_evaluate(experiment=experiment)
    assert evaluated.status == ExperimentStatus.RUNNING and evaluated.p_value == 1.0


def test_the_sweep_finds_the_tenants_with_a_running_experiment_and_their_evaluation_reads_it(alice: Persona) -> None:
    from beastflow.redis_client import get_redis, key
    from strategies.services import RUNNING_KEY
    from strategies.tasks import _sweep, experiment_evaluate_task

    # given: an experiment whose tenant the running set forgot (a Redis flush)
    experiment = _experiment(alice)
    get_redis().delete(key(RUNNING_KEY))
    # when
    _sweep()
    with tenant_context(alice.tenant):
        evaluated = experiment_evaluate_task()
        reading = Experiment.objects.get(pk=experiment.pk)
    # then
    assert alice.tenant.schema_name.encode() in get_redis().smembers(key(RUNNING_KEY))
    assert evaluated == 1 and reading.evaluated_at is not None and reading.result["samples"] == 0
