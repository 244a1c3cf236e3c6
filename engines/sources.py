"""Writes on sources: create, update, delete (services for the sources API)."""

from __future__ import annotations

from typing import Any

import structlog
from django.db import connection, transaction

from beastflow import crypto
from beastflow.tenancy import current_schema, current_tenant
from engines import source_ops
from engines.connectors.presets import PresetError, preset_apply
from engines.ingest.service import source_cache
from engines.models import ModeChoices, Source, StreamState
from engines.modes import Mode
from engines.reconcile.runs import reconcile_scheduled
from engines.schemas import DataSourceConfig, PushScheme, validate_source
from scheduling.services import source_schedule_add, source_wake
from tenants.models import SourceRoute

log = structlog.get_logger(__name__)

EDITABLE = (
    "name",
    "connector",
    "config",
    "preset",
    "push",
    "hysteresis",
    "poll",
    "reconcile",
    "health",
    "data_schema",
)


class SourceError(Exception):
    """A source request that cannot be carried out."""

    def __init__(self, status: int, detail: str, errors: list[dict[str, str]] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors or []


def parse_spec(body: Any) -> DataSourceConfig:
    if not isinstance(body, dict):
        raise SourceError(400, "The body must be a JSON object.", [{"field": "body", "message": "not an object"}])
    try:
        # A preset's fields go under the body (see docs/presets.md); then one validation for all.
        body = preset_apply(body)
    except PresetError as exc:
        raise SourceError(422, exc.detail, exc.errors) from exc
    spec, errors = validate_source(body)
    if spec is None:
        raise SourceError(422, "The source definition is invalid; see errors.", errors)
    return spec


def _spec_fields(spec: DataSourceConfig) -> dict[str, Any]:
    data = spec.model_dump(mode="json")
    # Store the connector config with its defaults filled in, so what the
    # engines read is exactly what the API showed.
    data["config"] = spec.connector_config().model_dump(mode="json")
    data["push"] = spec.push.stored()  # the secret has a column of its own, encrypted
    data["preset"] = spec.preset or ""
    return {name: data[name] for name in EDITABLE}


def source_spec(source: Source) -> dict[str, Any]:
    spec = {name: getattr(source, name) for name in EDITABLE}
    spec["preset"] = source.preset or None
    return spec


def _push_secret(spec: DataSourceConfig, *, current: str = "") -> str:
    """The encrypted push secret to store: a new one given, else the current one; native schemes need one."""
    if spec.push.secret is not None:
        return crypto.encrypt(spec.push.secret)
    if spec.push.scheme != PushScheme.BEASTFLOW and not current:
        raise SourceError(
            422,
            f"Push scheme {spec.push.scheme.value} verifies with the upstream's webhook secret: give push.secret.",
            [{"field": "push.secret", "message": "required for this scheme"}],
        )
    return current


@transaction.atomic
def source_create(*, spec: DataSourceConfig) -> tuple[Source, str]:
    """Create a source; returns it with its webhook secret (shown only now)."""
    tenant = current_tenant()
    if Source.objects.filter(name=spec.name).exists():
        raise SourceError(409, f"A source named {spec.name!r} exists.", [{"field": "name", "message": "taken"}])
    if Source.objects.count() >= tenant.max_sources:
        raise SourceError(422, f"The tenant's quota of {tenant.max_sources} sources is used up.")
    push_secret = _push_secret(spec)
    route = SourceRoute.objects.create(tenant=tenant)
    secret = source_ops.new_webhook_secret()
    # An upstream without webhooks is polled from the start: waiting for pushes
    # that never come would only take it through silence, a failure and healing.
    mode = ModeChoices.EVENT if spec.push.expected else ModeChoices.POLLING
    source = Source.objects.create(
        id=route.pk,
        webhook_secret_encrypted=crypto.encrypt(secret),
        push_secret_encrypted=push_secret,
        mode=mode,
        **_spec_fields(spec),
    )
    StreamState.objects.create(source=source)
    source_schedule_add(
        source_id=source.pk, tenant_id=tenant.pk, judge=spec.push.expected, reconcile=reconcile_scheduled(source)
    )
    log.info("source_created", source=source.pk, connector=source.connector, tenant=tenant.slug)
    return source, secret


@transaction.atomic
def source_update(*, source: Source, changes: Any) -> Source:
    """Apply a PATCH: top-level fields replace, the whole result is validated.

    The caller's object was loaded earlier (the request's, the admin form's):
    the changes are merged onto the row read afresh under the lock
    engines/source_ops.py takes, and only the columns of the definition they
    change are written. A mode switch, a hold or a strategy's parameters
    written meanwhile (the monitor, healing, strategies) are not undone by a
    stale copy; the monitor's own compare-and-set waits for the lock. A change
    of `paused` is source_ops' pause or resume, as from the console. The
    caller's object is brought up to date with the row and returned.
    """
    if not isinstance(changes, dict):
        raise SourceError(400, "The body must be a JSON object.", [{"field": "body", "message": "not an object"}])
    unknown = sorted(set(changes) - set(EDITABLE) - {"paused"})
    if unknown:
        raise SourceError(
            422, "Unknown or read-only fields.", [{"field": name, "message": "not editable"} for name in unknown]
        )
    paused = changes.get("paused")
    if "paused" in changes and not isinstance(paused, bool):
        raise SourceError(422, "paused must be a boolean.", [{"field": "paused", "message": "not a boolean"}])
    locked = Source.objects.select_for_update().filter(pk=source.pk).first()
    if locked is None:  # deleted since the caller loaded it
        raise SourceError(404, "No such source.")
    merged = {**source_spec(locked), **{k: v for k, v in changes.items() if k != "paused"}}
    if isinstance(merged.get("push"), dict):  # a rendered source sent back as it was read
        merged["push"] = {k: v for k, v in merged["push"].items() if k != "secret_set"}
    spec = parse_spec(merged)
    if spec.name != locked.name and Source.objects.filter(name=spec.name).exclude(pk=locked.pk).exists():
        raise SourceError(409, f"A source named {spec.name!r} exists.", [{"field": "name", "message": "taken"}])
    fields = {**_spec_fields(spec), "push_secret_encrypted": _push_secret(spec, current=locked.push_secret_encrypted)}
    written = [name for name, value in fields.items() if getattr(locked, name) != value]
    for name in written:
        setattr(locked, name, fields[name])
    locked.save(update_fields=[*written, "updated_at"])  # an operator's edit, even of nothing (RCA reads it)
    if not spec.push.expected:
        if locked.mode != ModeChoices.POLLING:
            # No webhooks from now on: polling carries the source, recorded as any switch.
            source_ops.force_mode(
                locked,
                to=Mode.POLLING,
                actor="api",
                reason="push.expected set to false",
                signals={"push_expected": False},
            )
        # The push stream's last judgement no longer says anything about the source.
        Source.objects.filter(pk=locked.pk).update(health_score=None, verdict="")
        locked.refresh_from_db()
    toggled = (
        paused is not None and paused != locked.paused and (source_ops.pause if paused else source_ops.resume)(locked)
    )
    if not toggled:  # a pause or resume woke the engines and forgot the cached facts itself
        # Its thresholds or intervals changed: every engine looks at it again now.
        source_wake(locked.pk, judge=True, poll=True, reconcile=reconcile_scheduled(locked))
        schema = current_schema()  # now: the callback may run after the request has left the tenant's schema
        transaction.on_commit(lambda: source_cache.forget(schema, locked.pk))
    log.info("source_updated", source=locked.pk, fields=sorted(changes))
    for field in Source._meta.concrete_fields:
        setattr(source, field.attname, getattr(locked, field.attname))
    return source


@transaction.atomic
def source_delete(*, source: Source) -> None:
    source_id = source.pk
    with transaction.atomic():
        # Locked first: an engine reporting a failure for this source meanwhile
        # (it takes a key-share lock, healing.services.failure_report) either
        # lands before and is deleted with it, or finds the source gone.
        Source.objects.select_for_update().filter(pk=source_id).exists()
        # The bulk tables reference the source without ORM cascade: one
        # statement each, so a source with millions of rows deletes in seconds.
        with connection.cursor() as cursor:
            for table in ("engines_change", "engines_record", "engines_event"):
                cursor.execute(f"DELETE FROM {table} WHERE source_id = %s", [source_id])  # noqa: S608
        source.delete()
        SourceRoute.objects.filter(pk=source_id).delete()
    schema = current_schema()
    transaction.on_commit(lambda: source_cache.forget(schema, source_id))
    log.info("source_deleted", source=source_id)


def webhook_secret(source: Source) -> str:
    return crypto.decrypt(source.webhook_secret_encrypted)


def push_secret(source: Source) -> str | None:
    """The upstream's webhook secret of a native push scheme (None when none is set)."""
    return crypto.decrypt(source.push_secret_encrypted) if source.push_secret_encrypted else None
