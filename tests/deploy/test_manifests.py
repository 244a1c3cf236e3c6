"""The Kubernetes manifests (deploy/k8s): rendered like `kubectl kustomize`, valid against the
Kubernetes schemas (kubernetes-validate ships them, so this runs offline), and shaped as
docs/deploy.md says: a worker Deployment per queue, probes, PDBs, no secret defaulted."""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from django.conf import settings

from beastflow import health
from tests.deploy.kustomize import Resource, build

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "deploy" / "k8s" / "base"
EXAMPLE = ROOT / "deploy" / "k8s" / "overlays" / "example"
# The oldest Kubernetes we claim (autoscaling/v2, policy/v1, batch ttl) and the newest schemas shipped.
KUBERNETES_VERSIONS = ("1.29.0", kubernetes_validate.latest_version())


def _pods(resources: list[Resource]) -> list[tuple[Resource, dict[str, Any]]]:
    return [(r, r["spec"]["template"]) for r in resources if r["kind"] in ("Deployment", "Job")]


def _by(resources: list[Resource], kind: str) -> dict[str, Resource]:
    return {r["metadata"]["name"]: r for r in resources if r["kind"] == kind}


@pytest.fixture(scope="module")
def example() -> list[Resource]:
    return build(EXAMPLE)


@pytest.mark.parametrize("folder", [BASE, EXAMPLE], ids=["base", "example"])
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_rendered_resource_is_valid_against_the_kubernetes_schemas(folder: Path, version: str) -> None:
    resources = build(folder)
    assert resources
    for resource in resources:
        kubernetes_validate.validate(resource, version, strict=True)


def test_the_validation_is_not_vacuous(example: list[Resource]) -> None:
    broken = copy.deepcopy(_by(example, "Deployment")["beastflow-web"])
    broken["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["paht"] = "/healthz"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[0], strict=True)


@pytest.mark.parametrize("folder", [BASE, EXAMPLE], ids=["base", "example"])
def test_the_python_renderer_gives_what_kubectl_kustomize_gives(folder: Path) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed here; the renderer was compared with it where it is")
    rendered = subprocess.run([kubectl, "kustomize", str(folder)], capture_output=True, text=True, check=True).stdout
    theirs = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(rendered) if d}
    ours = {(d["kind"], d["metadata"]["name"]): d for d in build(folder)}
    assert ours == theirs


def test_one_worker_deployment_per_queue_consumes_exactly_that_queue(example: list[Resource]) -> None:
    consumed = {}
    for name, deployment in _by(example, "Deployment").items():
        command = deployment["spec"]["template"]["spec"]["containers"][0]["command"]
        if "worker" in command:
            queue = command[command.index("-Q") + 1]
            assert name == f"beastflow-worker-{queue}"
            consumed[queue] = deployment
    assert set(consumed) == set(settings.BEASTFLOW_QUEUES)
    assert _by(example, "Deployment")["beastflow-worker-polls"]["spec"]["replicas"] == 3  # the overlay's


def test_the_web_is_probed_on_healthz_and_readyz_about_itself_and_scales(example: list[Resource]) -> None:
    web = _by(example, "Deployment")["beastflow-web"]["spec"]["template"]["spec"]["containers"][0]
    assert web["livenessProbe"]["httpGet"]["path"] == "/healthz"
    readiness = web["readinessProbe"]["httpGet"]["path"]
    assert readiness.startswith("/readyz?only=")
    named = set(readiness.split("=", 1)[1].split(","))
    assert named <= set(health.registered())  # a typo would 400 every probe
    assert "migrations" in named and "monitor_lag" not in named
    hpa = _by(example, "HorizontalPodAutoscaler")["beastflow-web"]
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "beastflow-web"}
    assert hpa["spec"]["minReplicas"] >= 2


def test_every_deployment_has_a_disruption_budget_selecting_its_pods(example: list[Resource]) -> None:
    budgets = _by(example, "PodDisruptionBudget")
    for name, deployment in _by(example, "Deployment").items():
        budget = budgets[name]
        wanted = budget["spec"]["selector"]["matchLabels"]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert wanted.items() <= labels.items()
        assert deployment["spec"]["selector"]["matchLabels"] == wanted
        others = [d for n, d in _by(example, "Deployment").items() if n != name]
        assert not any(wanted.items() <= d["spec"]["template"]["metadata"]["labels"].items() for d in others)


def test_the_scheduler_runs_twice_under_its_leader_lock(example: list[Resource]) -> None:
    beat = _by(example, "Deployment")["beastflow-beat"]
    assert beat["spec"]["replicas"] >= 2
    container = beat["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][:4] == ["celery", "-A", "beastflow", "beat"]
    assert settings.CELERY_BEAT_SCHEDULER == "scheduling.beat:LeaderScheduler"  # what makes two safe
    assert container["livenessProbe"]["exec"]["command"] == ["python", "-m", "beastflow.probes", "beat"]
    assert _by(example, "PodDisruptionBudget")["beastflow-beat"]["spec"]["minAvailable"] == 1


def test_migrations_run_in_a_job_and_every_pod_waits_for_them(example: list[Resource]) -> None:
    job = _by(example, "Job")["beastflow-migrate"]
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == ["python", "manage.py", "migrate_tenants"]
    for deployment in _by(example, "Deployment").values():
        (init,) = deployment["spec"]["template"]["spec"]["initContainers"]
        assert init["command"][:4] == ["python", "-m", "beastflow.probes", "migrations"]


def test_pods_run_unprivileged_with_resources_and_the_secret_is_never_made_here(example: list[Resource]) -> None:
    assert not [r for r in example if r["kind"] == "Secret"]
    for resource, template in _pods(example):
        pod = template["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["serviceAccountName"] == "beastflow"
        for container in pod.get("initContainers", []) + pod["containers"]:
            where = f"{resource['metadata']['name']}/{container['name']}"
            assert container["image"] == "registry.example.com/beastflow:1.0.0", where
            assert container["securityContext"]["readOnlyRootFilesystem"] is True, where
            assert container["securityContext"]["allowPrivilegeEscalation"] is False, where
            assert {"cpu", "memory"} <= set(container["resources"]["requests"]), where
            assert "memory" in container["resources"]["limits"], where
            assert {"secretRef": {"name": "beastflow"}} in container["envFrom"], where
    namespaced = [r for r in example if r["kind"] != "Namespace"]
    assert {r["metadata"].get("namespace") for r in namespaced} == {"beastflow"}
