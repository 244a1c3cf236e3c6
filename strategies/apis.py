"""The strategy-configs and experiments API: versions, diffs, rollbacks, assignment, tuning, A/B experiments."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from beastflow.openapi import PAGE_PARAMETERS, problems
from beastflow.pagination import paginate_desc
from beastflow.problems import ProblemError
from beastflow.strict_input import StrictInputSerializer
from engines.selectors import source_get
from healing.apis import actor
from observability.models import FailureRecording
from observability.replay import RecordingError
from simulator.scenario import SCENARIOS_DIR, ScenarioError, load_scenario
from strategies import openapi as docs
from strategies import selectors, services
from strategies.models import Experiment, ExperimentStatus, Metric, StrategyVersion
from strategies.params import StrategyParams
from strategies.replay import history
from strategies.tuner import tune

MAX_REPLAYS = 24  # scenario loops per tuning request (x 30 candidates)


def _raise(exc: services.StrategyError) -> ProblemError:
    return ProblemError(exc.status, exc.detail, errors=exc.errors)


def _valid(serializer: serializers.Serializer[Any]) -> dict[str, Any]:
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def version_or_404(config: str, number: Any) -> StrategyVersion:
    version = selectors.version_get(config, number)
    if version is None:  # another tenant's versions live in its own schema: the same 404
        raise ProblemError(404, f"No version {number} of strategy config {config!r}.")
    return version


def experiment_or_404(experiment_id: Any) -> Experiment:
    experiment = selectors.experiment_get(experiment_id)
    if experiment is None:
        raise ProblemError(404, "No such experiment.")
    return experiment


# -- strategy configs -------------------------------------------------------------------


class StrategyConfigListCreateApi(APIView):
    @extend_schema_serializer(component_name="StrategyVersionInput")
    class InputSerializer(StrictInputSerializer):
        config = serializers.SlugField(max_length=100)
        params = serializers.JSONField(help_text="Only what changes from the config's latest version (or defaults).")
        reason = serializers.CharField(max_length=2000)
        description = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")

    @extend_schema(
        operation_id="strategy_configs_list",
        parameters=[OpenApiParameter("config", str, description="Only this config's versions."), *PAGE_PARAMETERS],
        responses={200: docs.StrategyVersionPage},
        summary="Strategy versions, newest first",
    )
    def get(self, request: Request) -> Response:
        rows = selectors.versions(config=request.query_params.get("config") or None)
        page = paginate_desc(rows, request.query_params, selectors.versions_render)
        return Response(page.as_dict())

    @extend_schema(
        operation_id="strategy_configs_create_version",
        request=InputSerializer,
        responses={201: docs.StrategyVersionOut, **problems(422)},
        summary="Create the next version of a strategy config (the config is made on first use)",
        examples=[
            OpenApiExample(
                "faster failover",
                request_only=True,
                value={
                    "config": "default",
                    "params": {"hysteresis": {"fail_threshold": 2, "min_dwell_s": 5}},
                    "reason": "detect outages a tick sooner",
                },
            )
        ],
    )
    def post(self, request: Request) -> Response:
        body = _valid(self.InputSerializer(data=request.data))
        if not isinstance(body["params"], dict):
            raise ProblemError(422, "params must be an object.", errors=[{"field": "params", "message": "an object"}])
        try:
            version = services.version_create(
                config_name=body["config"],
                params=body["params"],
                author=actor(request),
                reason=body["reason"],
                description=body["description"],
            )
        except services.StrategyError as exc:
            raise _raise(exc) from exc
        return Response(selectors.version_render(version), status=201)


class StrategyVersionDetailApi(APIView):
    @extend_schema(
        operation_id="strategy_configs_get_version",
        responses={200: docs.StrategyVersionOut},
        summary="One version of a strategy config",
    )
    def get(self, request: Request, config: str, number: str) -> Response:
        return Response(selectors.version_render(version_or_404(config, number)))


class StrategyDiffApi(APIView):
    @extend_schema(
        operation_id="strategy_configs_diff",
        parameters=[
            OpenApiParameter("from", int, required=True, description="The older version's number."),
            OpenApiParameter("to", int, required=True, description="The newer version's number."),
        ],
        responses={200: docs.StrategyDiffOut},
        summary="The parameters that differ between two versions",
    )
    def get(self, request: Request, config: str) -> Response:
        old = version_or_404(config, request.query_params.get("from"))
        new = version_or_404(config, request.query_params.get("to"))
        return Response(selectors.version_diff(old, new))


class StrategyRollbackApi(APIView):
    @extend_schema_serializer(component_name="StrategyRollbackInput")
    class InputSerializer(StrictInputSerializer):
        to = serializers.IntegerField(min_value=1, help_text="The version number to restore.")
        reason = serializers.CharField(max_length=2000)

    @extend_schema(
        operation_id="strategy_configs_rollback",
        request=InputSerializer,
        responses={201: docs.StrategyVersionOut},
        summary="Roll back: a new version equal to an older one (history is never rewritten)",
    )
    def post(self, request: Request, config: str) -> Response:
        body = _valid(self.InputSerializer(data=request.data))
        old = version_or_404(config, body["to"])
        version = services.version_rollback(version=old, author=actor(request), reason=body["reason"])
        return Response(selectors.version_render(version), status=201)


class StrategyAssignApi(APIView):
    @extend_schema_serializer(component_name="StrategyAssignInput")
    class InputSerializer(StrictInputSerializer):
        scope = serializers.ChoiceField(["tenant", "source"], help_text="The tenant default, or one source's override.")
        source_id = serializers.IntegerField(required=False, source="source", help_text="With scope source.")
        auto_promote = serializers.BooleanField(
            required=False, help_text="With scope tenant: let significant winners be promoted without approval."
        )

    @extend_schema(
        operation_id="strategy_configs_assign",
        request=InputSerializer,
        responses={200: docs.StrategyVersionOut, **problems(422)},
        summary="Make a version the tenant default, or one source's override",
    )
    def post(self, request: Request, config: str, number: str) -> Response:
        version = version_or_404(config, number)
        body = _valid(self.InputSerializer(data=request.data))
        if body["scope"] == "tenant":
            services.tenant_default_set(version=version, actor=actor(request), auto_promote=body.get("auto_promote"))
        else:
            if "source" not in body:
                raise ProblemError(
                    422, "scope source needs a source.", errors=[{"field": "source", "message": "required"}]
                )
            source = source_get(body["source"])
            if source is None:
                raise ProblemError(404, "No such source.")
            services.source_version_set(source=source, version=version, actor=actor(request))
        return Response(selectors.version_render(version))


class StrategyTuneApi(APIView):
    @extend_schema_serializer(component_name="StrategyTuneInput")
    class InputSerializer(StrictInputSerializer):
        scenarios = serializers.ListField(
            child=serializers.CharField(max_length=100),
            min_length=1,
            max_length=10,
            required=False,
            help_text="Simulator scenarios to replay (simulator/scenarios), e.g. demo-outage.",
        )
        source_id = serializers.IntegerField(
            required=False, source="source", help_text="Instead of scenarios: this source's recorded verdicts."
        )
        failure_id = serializers.IntegerField(
            required=False,
            source="failure",
            help_text="Instead of scenarios: the failure recording of this failure (POST /failures/{id}/recording).",
        )
        hours = serializers.FloatField(min_value=0.1, max_value=48, default=24.0, help_text="With source_id.")
        seeds = serializers.IntegerField(min_value=1, max_value=20, default=3)
        loops = serializers.IntegerField(min_value=1, max_value=5, default=2)
        budget_per_hour = serializers.FloatField(
            min_value=0,
            required=False,
            help_text="Switches per source-hour allowed; default: what the version (or the source) does today.",
        )
        metric = serializers.ChoiceField(
            Metric.values,
            required=False,
            help_text="Also start an A/B experiment on this metric: the version (control) against the proposal.",
        )

    @extend_schema(
        operation_id="strategy_configs_tune",
        request=InputSerializer,
        responses={200: docs.TuneOut, **problems(409, 422)},
        summary="Propose faster hysteresis parameters within the flap budget; stored as a new version, not adopted",
        description=(
            "From the simulator's scenarios (same seeds for every candidate), one source's recorded verdicts or "
            "a failure recording. The proposal is a new version of the config, adopted only after an experiment: "
            "with metric the experiment starts at once (this version as the control, the proposal "
            "as the treatment); when it cannot (another one runs, too few sources) nothing is stored."
        ),
    )
    def post(self, request: Request, config: str, number: str) -> Response:
        version = version_or_404(config, number)
        body = _valid(self.InputSerializer(data=request.data))
        with transaction.atomic():  # the proposal and its experiment, or neither
            answer = self._tune(request, version, body)
            created = selectors.version_by_id(answer["version"]["id"]) if answer["version"] else None
            answer["experiment"] = None
            if created is not None and "metric" in body:
                try:
                    experiment = services.experiment_start(
                        name=f"{version} vs tuned {created}",
                        control=version,
                        treatment=created,
                        metric=body["metric"],
                        actor=actor(request),
                    )
                except services.StrategyError as exc:
                    raise _raise(exc) from exc
                answer["experiment"] = selectors.experiment_render(experiment)
        return Response(answer)

    def _tune(self, request: Request, version: StrategyVersion, body: dict[str, Any]) -> dict[str, Any]:
        if sum(name in body for name in ("scenarios", "source", "failure")) != 1:
            errors = [{"field": "scenarios", "message": "give one of scenarios, source_id, failure_id"}]
            raise ProblemError(422, "Tune on scenarios, a source's history or a failure recording.", errors=errors)
        if "source" in body:
            return self._from_source(request, version, body)
        if "failure" in body:
            return self._from_recording(request, version, body)
        # Every candidate replays every history: a request's work is bounded here (about 10 ms a history).
        if len(body["scenarios"]) * body["seeds"] * body["loops"] > MAX_REPLAYS:
            errors = [{"field": "seeds", "message": f"scenarios x seeds x loops must be at most {MAX_REPLAYS}"}]
            raise ProblemError(422, "Too many histories to replay in one request.", errors=errors)
        histories = []
        for name in body["scenarios"]:
            path = SCENARIOS_DIR / f"{name}.yaml"
            if "/" in name or not path.is_file():
                raise ProblemError(422, f"No scenario {name!r}.", errors=[{"field": "scenarios", "message": name}])
            try:
                scenario = load_scenario(path)
            except ScenarioError as exc:
                raise ProblemError(422, str(exc)) from exc
            histories += [history(scenario, seed=seed, loops=body["loops"]) for seed in range(body["seeds"])]
        proposal = tune(
            histories, StrategyParams.model_validate(version.params), budget_per_hour=body.get("budget_per_hour")
        )
        answer = {**proposal.as_dict(), "version": None}
        if proposal.best is not None and proposal.improves:
            created = services.version_create(
                config_name=version.config.name,
                params={"hysteresis": proposal.best.changes},
                author=actor(request),
                reason=f"tuned from v{version.number} on {', '.join(body['scenarios'])}",
                origin={"tuned_from": version.number, "proposal": proposal.as_dict()},
            )
            answer["version"] = selectors.version_render(created)
        return answer

    def _from_recording(self, request: Request, version: StrategyVersion, body: dict[str, Any]) -> dict[str, Any]:
        recording = FailureRecording.objects.filter(failure_id=body["failure"]).first()
        if recording is None:  # another tenant's failure is not in this schema either
            raise ProblemError(404, "No recording of that failure (POST /api/v1/failures/{id}/recording makes one).")
        try:
            changes, report, created = services.recording_tune(
                recording=recording.data, version=version, author=actor(request), failure_id=body["failure"]
            )
        except RecordingError as exc:
            raise ProblemError(422, str(exc)) from exc
        return {
            "budget_per_hour": None,
            "baseline": {"hysteresis": version.params["hysteresis"], **report["before"]},
            "best": None if changes is None else {"changes": changes, **report.get("after", {})},
            "improves": created is not None,
            "candidates": 0,
            "feasible": 0 if changes is None else 1,
            "version": selectors.version_render(created) if created else None,
        }

    def _from_source(self, request: Request, version: StrategyVersion, body: dict[str, Any]) -> dict[str, Any]:
        source = source_get(body["source"])
        if source is None:
            raise ProblemError(404, "No such source.")
        changes, created = services.source_tune(
            source=source,
            version=version,
            author=actor(request),
            hours=body["hours"],
            budget_per_hour=body.get("budget_per_hour"),
        )
        return {
            "budget_per_hour": (created.origin if created else {}).get("budget_per_hour", body.get("budget_per_hour")),
            "baseline": {"hysteresis": version.params["hysteresis"]},
            "best": None if changes is None else {"changes": changes},
            "improves": created is not None,
            "candidates": 0,
            "feasible": 0 if changes is None else 1,
            "version": selectors.version_render(created) if created else None,
        }


# -- experiments ---------------------------------------------------------------------


class ExperimentListStartApi(APIView):
    @extend_schema_serializer(component_name="ExperimentStartInput")
    class InputSerializer(StrictInputSerializer):
        name = serializers.CharField(max_length=200)
        control = serializers.IntegerField(help_text="A strategy version's id.")
        treatment = serializers.IntegerField(help_text="A strategy version's id.")
        metric = serializers.ChoiceField(Metric.values)
        coverage = serializers.FloatField(min_value=0.01, max_value=1.0, default=1.0)
        share = serializers.FloatField(min_value=0.05, max_value=0.95, default=0.5)
        stratify_by = serializers.ListField(
            child=serializers.ChoiceField(list(services.STRATIFY)), default=list(services.STRATIFY)
        )
        bucket_s = serializers.FloatField(min_value=10, max_value=86_400, default=3600)
        guardrails = serializers.DictField(child=serializers.FloatField(min_value=0), required=False)
        alpha = serializers.FloatField(min_value=0.001, max_value=0.1, default=0.05)

    @extend_schema(
        operation_id="experiments_list",
        parameters=[OpenApiParameter("status", str, description="Only experiments in this status."), *PAGE_PARAMETERS],
        responses={200: docs.ExperimentPage},
        summary="Experiments, newest first",
    )
    def get(self, request: Request) -> Response:
        status = request.query_params.get("status") or None
        if status is not None and status not in ExperimentStatus.values:
            raise ProblemError(
                400,
                f"status must be one of {', '.join(ExperimentStatus.values)}",
                errors=[{"field": "status", "message": "unknown status"}],
            )
        page = paginate_desc(
            selectors.experiments(status=status),
            request.query_params,
            lambda rows: [selectors.experiment_render(row) for row in rows],
        )
        return Response(page.as_dict())

    @extend_schema(
        operation_id="experiments_start",
        request=InputSerializer,
        responses={201: docs.ExperimentOut, **problems(409, 422)},
        summary="Start an A/B experiment between two versions on a share of the tenant's sources",
    )
    def post(self, request: Request) -> Response:
        body = _valid(self.InputSerializer(data=request.data))
        control = selectors.version_by_id(body["control"])
        treatment = selectors.version_by_id(body["treatment"])
        missing = [name for name, v in (("control", control), ("treatment", treatment)) if v is None]
        if control is None or treatment is None:
            raise ProblemError(
                422,
                "No such strategy version.",
                errors=[{"field": name, "message": "no such version"} for name in missing],
            )
        unknown = sorted(set(body.get("guardrails", {})) - set(services.DEFAULT_GUARDRAILS))
        if unknown:
            raise ProblemError(
                422,
                f"guardrails takes {', '.join(services.DEFAULT_GUARDRAILS)}",
                errors=[{"field": "guardrails", "message": ", ".join(unknown)}],
            )
        try:
            experiment = services.experiment_start(
                name=body["name"],
                control=control,
                treatment=treatment,
                metric=body["metric"],
                actor=actor(request),
                coverage=body["coverage"],
                share=body["share"],
                stratify_by=body["stratify_by"],
                guardrails=body.get("guardrails"),
                bucket_s=body["bucket_s"],
                alpha=body["alpha"],
            )
        except services.StrategyError as exc:
            raise _raise(exc) from exc
        return Response(selectors.experiment_render(experiment), status=201)


class ExperimentDetailApi(APIView):
    @extend_schema(
        operation_id="experiments_get",
        responses={200: docs.ExperimentOut},
        summary="One experiment with its latest result (effect, confidence interval, p-value, samples)",
    )
    def get(self, request: Request, experiment_id: str) -> Response:
        return Response(selectors.experiment_render(experiment_or_404(experiment_id)))


class _Decision(APIView):
    @extend_schema_serializer(component_name="ExperimentDecisionInput")
    class InputSerializer(StrictInputSerializer):
        reason = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")

    def _decide(self, request: Request, experiment_id: str, verb: str) -> Response:
        experiment = experiment_or_404(experiment_id)
        body = _valid(self.InputSerializer(data=request.data))
        who = actor(request)
        try:
            if verb == "stop":
                experiment = services.experiment_stop(
                    experiment=experiment, actor=who, reason=body["reason"] or "stopped"
                )
            elif verb == "promote":
                experiment = services.experiment_promote(experiment=experiment, actor=who)
            else:
                experiment = services.experiment_reject(
                    experiment=experiment, actor=who, reason=body["reason"] or "rejected"
                )
        except services.StrategyError as exc:
            raise _raise(exc) from exc
        return Response(selectors.experiment_render(experiment))


class ExperimentStopApi(_Decision):
    @extend_schema(
        operation_id="experiments_stop",
        request=_Decision.InputSerializer,
        responses={200: docs.ExperimentOut, **problems(409)},
        summary="Stop an experiment now; every source goes back to what it ran before",
    )
    def post(self, request: Request, experiment_id: str) -> Response:
        return self._decide(request, experiment_id, "stop")


class ExperimentPromoteApi(_Decision):
    @extend_schema(
        operation_id="experiments_promote",
        request=_Decision.InputSerializer,
        responses={200: docs.ExperimentOut, **problems(409)},
        summary="Approve the winner: the treatment becomes the tenant default (only at p < alpha)",
    )
    def post(self, request: Request, experiment_id: str) -> Response:
        return self._decide(request, experiment_id, "promote")


class ExperimentRejectApi(_Decision):
    @extend_schema(
        operation_id="experiments_reject",
        request=_Decision.InputSerializer,
        responses={200: docs.ExperimentOut, **problems(409)},
        summary="Refuse the promotion; every source goes back to what it ran before",
    )
    def post(self, request: Request, experiment_id: str) -> Response:
        return self._decide(request, experiment_id, "reject")
