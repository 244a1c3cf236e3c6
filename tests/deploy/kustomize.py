"""The part of kustomize that deploy/k8s uses, in Python, so `make test` renders the manifests
without a kubectl or kustomize binary (neither installs from PyPI or Debian).

Supported, and nothing else (an unknown kustomization key is an error, not
ignored): `resources` (files and directories), `namespace`, `labels` (with
includeTemplates; selectors are never touched), `images`, `replicas` and
`patches` given as strategic-merge files (maps merged, lists of maps merged by
`name`). tests/deploy/test_manifests.py compares the result with
`kubectl kustomize` wherever kubectl is installed.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

Resource = dict[str, Any]
SUPPORTED = {"apiVersion", "kind", "resources", "namespace", "labels", "images", "replicas", "patches"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "PriorityClass"}
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}


class KustomizeError(ValueError):
    pass


def build(folder: Path) -> list[Resource]:
    spec = yaml.safe_load((folder / "kustomization.yaml").read_text())
    unknown = set(spec) - SUPPORTED
    if unknown:
        raise KustomizeError(f"{folder}: kustomization keys this renderer does not know: {sorted(unknown)}")
    resources: list[Resource] = []
    for entry in spec.get("resources", []):
        path = folder / entry
        if path.is_dir():
            resources += build(path)
        else:
            resources += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    for patch in spec.get("patches", []):
        if set(patch) != {"path"}:
            raise KustomizeError(f"{folder}: only patches given by `path` are supported: {patch}")
        _patch(resources, yaml.safe_load((folder / patch["path"]).read_text()))
    if "namespace" in spec:
        for resource in resources:
            if resource["kind"] not in CLUSTER_SCOPED:
                resource["metadata"]["namespace"] = spec["namespace"]
    for label in spec.get("labels", []):
        if label.get("includeSelectors"):
            raise KustomizeError(f"{folder}: labels with includeSelectors are not supported")
        for resource in resources:
            resource["metadata"].setdefault("labels", {}).update(label["pairs"])
            if label.get("includeTemplates") and resource["kind"] in WORKLOADS:
                template = resource["spec"]["template"].setdefault("metadata", {})
                template.setdefault("labels", {}).update(label["pairs"])
    for image in spec.get("images", []):
        for container in _containers(resources):
            name, _, tag = container["image"].partition(":")
            if name == image["name"]:
                container["image"] = f"{image.get('newName', name)}:{image.get('newTag', tag or 'latest')}"
    for replicas in spec.get("replicas", []):
        matches = [r for r in resources if r["metadata"]["name"] == replicas["name"] and "replicas" in r["spec"]]
        if not matches:
            raise KustomizeError(f"{folder}: replicas for {replicas['name']!r}, which is not a resource")
        for resource in matches:
            resource["spec"]["replicas"] = replicas["count"]
    return resources


def _containers(resources: list[Resource]) -> list[dict[str, Any]]:
    found = []
    for resource in resources:
        if resource["kind"] in WORKLOADS:
            pod = resource["spec"]["template"]["spec"]
            found += pod.get("initContainers", []) + pod.get("containers", [])
    return found


def _patch(resources: list[Resource], patch: Resource) -> None:
    targets = [
        r for r in resources if r["kind"] == patch["kind"] and r["metadata"]["name"] == patch["metadata"]["name"]
    ]
    if len(targets) != 1:
        raise KustomizeError(f"patch {patch['kind']}/{patch['metadata']['name']} matches {len(targets)} resources")
    merged = _merge(targets[0], patch)
    targets[0].clear()
    targets[0].update(merged)


def _merge(base: Any, patch: Any) -> Any:
    if isinstance(base, dict) and isinstance(patch, dict):
        out = copy.deepcopy(base)
        for key, value in patch.items():
            out[key] = _merge(base[key], value) if key in base else copy.deepcopy(value)
        return out
    if isinstance(base, list) and isinstance(patch, list) and _named(base) and _named(patch):
        out_list = copy.deepcopy(base)
        for item in patch:
            match = next((i for i, old in enumerate(out_list) if old["name"] == item["name"]), None)
            if match is None:
                out_list.append(copy.deepcopy(item))
            else:
                out_list[match] = _merge(out_list[match], item)
        return out_list
    return copy.deepcopy(patch)


def _named(items: list[Any]) -> bool:
    return all(isinstance(item, dict) and "name" in item for item in items)
