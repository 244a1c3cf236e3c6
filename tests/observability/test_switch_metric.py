"""beastflow_mode_switches_total counts every switch where it is written, with a bounded reason kind."""

from __future__ import annotations

from typing import Any

from prometheus_client import REGISTRY

from console.services import source_force_mode
from tenants.models import Tenant
from tests.factories import make_source


def _count(**labels: str) -> float:
    return REGISTRY.get_sample_value("beastflow_mode_switches_total", labels) or 0.0


def test_an_operators_switch_is_counted_once_committed(
    in_acme: Tenant, django_capture_on_commit_callbacks: Any
) -> None:
    # given
    source, _ = make_source("switched")
    labels = {"from": "event", "to": "polling", "reason_kind": "forced"}
    before = _count(**labels)
    # when
    with django_capture_on_commit_callbacks(execute=False) as pending:
        source_force_mode(source=source, actor="alice", to="polling", reason="upstream maintenance")
    # then: nothing before the commit, one after
    assert _count(**labels) == before
    for callback in pending:
        callback()
    assert _count(**labels) == before + 1
