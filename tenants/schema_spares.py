"""Spare tenant schemas, cloned ahead of need, so that creating a tenant renames one (docs/scaling.md).

Cloning the template (tenants.schema_template) is a script of some 35
tables, 100 indexes and 20 identity sequences: 0.12 s on an empty
database, 0.2 s once a thousand tenants' catalogs are there, 0.4 s while
those thousand tenants' work runs beside it. A spare is such a clone made
beforehand by a worker; `spare_take` renames one into the new tenant's
schema inside the creating transaction, one catalog row, whatever the load.
Rename is safe because nothing in a clone names its schema: constraints,
indexes, identity sequences and partitions refer to each other by oid, and
the cloner refuses templates with anything that would (sequence defaults,
functions, views).

A spare is a schema named `tenant_spare_<hex>` whose comment carries the
fingerprint of the migration set it was cloned for. Only a spare with the
fingerprint this code expects is taken; one left by an older deploy is
dropped by the next fill. Taking and dropping hold the spare's own
transaction-level advisory lock, so two creators never take the same spare
and a fill never drops one being taken; a creating transaction that rolls
back gives its spare back.

`spares_fill` keeps BEASTFLOW_TENANT_SPARES of them (default 3; 0: none,
tenants are cloned as they are created): a task after every creation and the
clock once a minute (tenants/tasks.py). With no spare at hand, creation
clones as before.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from typing import Any

import structlog
from django.conf import settings
from django.db import connection, transaction
from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from tenants import schema_template

log = structlog.get_logger(__name__)

PREFIX = "tenant_spare_"
COMMENT_PREFIX = "beastflow spare "
# The two-key form of the advisory locks, (LOCK_CLASS, hashtext(spare)), apart
# from the template's one-key lock; (LOCK_CLASS, FILL_LOCK): one fill at a time.
LOCK_CLASS = 0x62667370  # "bfsp"
FILL_LOCK = -1

SCHEMAS_MADE = Counter(
    "beastflow_tenant_schemas_total", "New tenant schemas, by how they were made: spare (renamed) or clone", ["made"]
)


_q = schema_template.quote_ident


def _spares(cursor: Any, fingerprint: str) -> tuple[list[str], list[str]]:
    """The spares (ready for this migration set, made for another), by name."""
    cursor.execute(
        "SELECT nspname, obj_description(oid, 'pg_namespace') FROM pg_namespace WHERE starts_with(nspname, %s)"
        " ORDER BY nspname",
        [PREFIX],
    )
    ready: list[str] = []
    stale: list[str] = []
    for name, comment in cursor.fetchall():
        (ready if comment == COMMENT_PREFIX + fingerprint else stale).append(str(name))
    return ready, stale


def _locked(cursor: Any, spare: str) -> bool:
    """This transaction's lock on the spare, if nobody else holds it, and the spare still there."""
    cursor.execute(
        "SELECT pg_try_advisory_xact_lock(%s, hashtext(%s)) AND EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = %s)",
        [LOCK_CLASS, spare, spare],
    )
    return bool(cursor.fetchone()[0])


def spare_take(*, schema: str) -> bool:
    """Rename a ready spare to `schema` in the current transaction; False when there is none to take.

    The `after_clone` hooks run on it again: a spare made days ago gets the
    partitions of today.
    """
    if settings.BEASTFLOW_TENANT_SPARES <= 0:
        return False
    with transaction.atomic(), connection.cursor() as cursor:
        for spare in _spares(cursor, schema_template.expected_fingerprint())[0]:
            # Checked again under the lock: a creator that took it and committed meanwhile renamed it away.
            if not _locked(cursor, spare):
                continue
            cursor.execute(f"ALTER SCHEMA {_q(spare)} RENAME TO {_q(schema)}")
            cursor.execute(f"COMMENT ON SCHEMA {_q(schema)} IS NULL")
            for hook in schema_template.after_clone:
                hook(schema)
            log.info("tenant_spare_taken", spare=spare, schema=schema)
            return True
    return False


def spares_fill(*, target: int | None = None) -> int:
    """Drop spares of another migration set, then clone spares up to `target`; returns how many were made.

    One fill at a time (another returns 0 at once); each spare is made and
    committed on its own, so a creator can take it as soon as it exists.
    """
    target = settings.BEASTFLOW_TENANT_SPARES if target is None else target
    if target <= 0:
        return 0  # spares off: any left are neither taken nor touched
    fingerprint = schema_template.template_ensure()  # may migrate the template: outside any transaction
    made = 0
    while True:
        started = time.perf_counter()
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", [LOCK_CLASS, FILL_LOCK])
            if not cursor.fetchone()[0]:
                return made
            ready, stale = _spares(cursor, fingerprint)
            _drop(cursor, stale)
            if len(ready) >= target:
                return made
            spare = PREFIX + secrets.token_hex(6)
            schema_template.schema_create(schema=spare)
            cursor.execute(f"COMMENT ON SCHEMA {_q(spare)} IS %s", [COMMENT_PREFIX + fingerprint])
        made += 1
        log.info(
            "tenant_spare_made", spare=spare, ready=len(ready) + 1, seconds=round(time.perf_counter() - started, 3)
        )


def _drop(cursor: Any, stale: list[str]) -> None:
    """Spares cloned for another migration set (a deploy came since) are dropped."""
    for spare in stale:
        if _locked(cursor, spare):  # an older process may be taking it: then the next fill drops it
            cursor.execute(f"DROP SCHEMA {_q(spare)} CASCADE")
            log.info("tenant_spare_dropped", spare=spare, reason="made for another migration set")


def spares_ready() -> int:
    """How many spares could be taken now."""
    with connection.cursor() as cursor:
        return len(_spares(cursor, schema_template.expected_fingerprint())[0])


class SparesCollector(Collector):
    """`beastflow_tenant_spares`, read from the catalog when /metrics is scraped (the web serves it, workers fill)."""

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily("beastflow_tenant_spares", "", value=0)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            ready = spares_ready()
        except Exception:
            log.warning("metrics_tenant_spares_failed", exc_info=True)
            return
        yield GaugeMetricFamily("beastflow_tenant_spares", "Spare tenant schemas ready to be taken", value=ready)
