"""Mode switches: compare-and-set on the source, an audit row, a push to the console."""

from __future__ import annotations

from typing import Any

import structlog
from django.db import transaction
from django.utils import timezone
from prometheus_client import Counter

from beastflow import correlation, otel
from beastflow.tenancy import current_schema, current_tenant
from engines import outbound
from engines.hysteresis import Decision, Transition
from engines.models import ModeSwitch, Source
from engines.modes import Mode
from scheduling.services import source_wake, tenant_wake

log = structlog.get_logger(__name__)

# Every switch, the monitor's, an operator's or a healing action's. reason_kind
# is the decision's transition (degrade, caught_up, recover, validated,
# rollback, flap_hold, forced): a handful of values, unlike the free-text reason.
# Until observability these were counted by the monitor only, labelled
# from_mode/to_mode (docs/observability.md).
SWITCHES = Counter("beastflow_mode_switches_total", "Mode switches", ["from", "to", "reason_kind"])


def switch_trace_name(schema: str, source_id: int) -> str:
    """Where a switch leaves its trace context for the poll it makes due (beastflow.otel.remember)."""
    return f"switch:{schema}:{source_id}"


@transaction.atomic
def source_switch_mode(
    *,
    source: Source,
    decision: Decision,
    signals: dict[str, Any],
    actor: str = "",
    extra: dict[str, Any] | None = None,
    if_state: dict[str, Any] | None = None,
) -> bool:
    """Move the source to `decision.switch_to`. False when another worker moved it first.

    The update only lands if the source is still in the mode this decision
    was made from, so two monitors racing on one source cannot both switch.
    With `if_state`, also only if the stored hysteresis state is still the one
    the decision was made from: the monitor reads it unlocked, and a hold an
    operator or a healing action set meanwhile must not be switched past.
    The previous switch is judged here too: a recovery that validated helped,
    one that rolled back did not, a degrade whose polls caught up helped.
    """
    assert decision.switch_to is not None
    now = timezone.now()
    guard: dict[str, Any] = {} if if_state is None else {"hysteresis_state": if_state}
    moved = Source.objects.filter(pk=source.pk, mode=source.mode, **guard).update(
        mode=decision.switch_to.value,
        mode_since=now,
        hysteresis_state=decision.state.to_dict(),
        next_poll_at=now,  # a mode that polls starts polling at once
        **(extra or {}),
    )
    if moved != 1:
        return False  # lost the race: the winner wrote the audit row
    # The new mode is judged at once, and polled at once if it polls.
    source_wake(source.pk, judge=True, poll=True)
    if decision.switch_to is Mode.EVENT:
        # Back on push: the tenant's open stream failures can recover; its healing pass looks now.
        tenant_wake(tenant_id=current_tenant().pk, healing=True)
    previous = ModeSwitch.objects.filter(source=source).order_by("-at", "-id").first()
    if previous is not None:
        if decision.rolled_back or decision.transition is Transition.ROLLBACK:
            previous.rolled_back, previous.validated = True, False
            previous.save(update_fields=["rolled_back", "validated"])
        elif decision.transition in (Transition.VALIDATED, Transition.CAUGHT_UP) and previous.validated is None:
            previous.validated = True
            previous.save(update_fields=["validated"])
    ModeSwitch.objects.create(
        source=source,
        from_mode=source.mode,
        to_mode=decision.switch_to.value,
        transition=decision.transition.value if decision.transition else "",
        reason=decision.reason,
        signals=signals,
        at=now,
        actor=actor,
        correlation_id=correlation.current() or "",
        # The version the judge read with the source (no extra query: the batch loaded the row).
        strategy_version_id=source.strategy_version_id,
    )
    labels = (source.mode, decision.switch_to.value, decision.transition.value if decision.transition else "unknown")
    transaction.on_commit(lambda: SWITCHES.labels(*labels).inc())  # a switch rolled back never happened
    attributes = {"beastflow.source": source.pk, "beastflow.from": labels[0], "beastflow.to": labels[1]}
    with otel.span("mode.switch", attributes=attributes | {"beastflow.reason_kind": labels[2]}):
        otel.remember(switch_trace_name(current_schema(), source.pk))
    log.info(
        "mode_switched",
        source=source.pk,
        from_mode=source.mode,
        to_mode=decision.switch_to.value,
        transition=decision.transition.value if decision.transition else None,
        reason=decision.reason,
        actor=actor or "monitor",
    )
    _console_push(source.pk)
    source.mode = decision.switch_to.value
    source.mode_since = now
    source.hysteresis_state = decision.state.to_dict()
    return True


def _console_push(source_id: int) -> None:
    """After commit, tell the open consoles of the tenant (the console subscribes: engines/outbound.py)."""
    schema = current_schema()
    transaction.on_commit(lambda: outbound.announce(outbound.ModeSwitched(schema=schema, source_id=source_id)))
