"""Writes on sources: create, update, delete (services for the sources API)."""

from __future__ import annotations

import secrets
from typing import Any

import structlog
from django.db import connection, transaction

from beastflow import crypto
from beastflow.tenancy import current_schema, current_tenant
from engines.connectors.presets import PresetError, preset_apply
from engines.ingest.service import source_cache
from engines.models import Source, StreamState
from engines.schemas import DataSourceConfig, PushScheme, validate_source
from scheduling.services import source_schedule_add, source_wake
from tenants.models import SourceRoute

log = structlog.get_logger(__name__)

WEBHOOK_SECRET_PREFIX = "whsec_"  # noqa: S105  (a label, not a secret)
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


def new_webhook_secret() -> str:
    return WEBHOOK_SECRET_PREFIX + secrets.token_urlsafe(32)


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
    secret = new_webhook_secret()
    source = Source.objects.create(
        id=route.pk,
        webhook_secret_encrypted=crypto.encrypt(secret),
        push_secret_encrypted=push_secret,
        **_spec_fields(spec),
    )
    StreamState.objects.create(source=source)
    source_schedule_add(source_id=source.pk, tenant_id=tenant.pk)
    log.info("source_created", source=source.pk, connector=source.connector, tenant=tenant.slug)
    return source, secret


@transaction.atomic
def source_update(*, source: Source, changes: Any) -> Source:
    """Apply a PATCH: top-level fields replace, the whole result is validated."""
    if not isinstance(changes, dict):
        raise SourceError(400, "The body must be a JSON object.", [{"field": "body", "message": "not an object"}])
    unknown = sorted(set(changes) - set(EDITABLE) - {"paused"})
    if unknown:
        raise SourceError(
            422, "Unknown or read-only fields.", [{"field": name, "message": "not editable"} for name in unknown]
        )
    paused = changes.get("paused", source.paused)
    if not isinstance(paused, bool):
        raise SourceError(422, "paused must be a boolean.", [{"field": "paused", "message": "not a boolean"}])
    merged = {**source_spec(source), **{k: v for k, v in changes.items() if k != "paused"}}
    if isinstance(merged.get("push"), dict):  # a rendered source sent back as it was read
        merged["push"] = {k: v for k, v in merged["push"].items() if k != "secret_set"}
    spec = parse_spec(merged)
    if spec.name != source.name and Source.objects.filter(name=spec.name).exclude(pk=source.pk).exists():
        raise SourceError(409, f"A source named {spec.name!r} exists.", [{"field": "name", "message": "taken"}])
    source.push_secret_encrypted = _push_secret(spec, current=source.push_secret_encrypted)
    for name, value in _spec_fields(spec).items():
        setattr(source, name, value)
    source.paused = paused
    source.save()
    # Its thresholds, intervals or paused flag changed: every engine looks at it again now.
    source_wake(source.pk, judge=True, poll=True, reconcile=True)
    schema = current_schema()  # now: the callback may run after the request has left the tenant's schema
    transaction.on_commit(lambda: source_cache.forget(schema, source.pk))
    log.info("source_updated", source=source.pk, fields=sorted(changes))
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
