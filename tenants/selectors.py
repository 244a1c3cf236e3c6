"""Reads that resolve a request to its tenant, cached for the hot path.

Every API request resolves its key, so the lookups are cached in process
for a few seconds. A revoked key stops working within KEY_CACHE_TTL_S on
every process (immediately on the one that revoked it).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from tenants.models import ApiKey, Domain, SourceRoute, Tenant, hash_api_key

KEY_CACHE_TTL_S = 10.0
_MAX_ENTRIES = 10_000


class CacheMiss(Exception):  # noqa: N818 (a signal to the caller, not an error)
    """Raised instead of querying when a caller asked for cached answers only.

    The ingest fast path tries a request on its event loop first and must
    not touch Django's database layer there: even a query Django would
    refuse (SynchronousOnlyOperation) first makes a connection object for
    the request's task, which becomes garbage for the cyclic collector when
    the task ends, one per cache miss. It asks with `cached_only` and, on a
    miss, runs the request in a thread instead.
    """


@dataclass(frozen=True)
class ResolvedKey:
    key_id: int
    tenant: Tenant


class _TtlCache:
    def __init__(self) -> None:
        self._items: dict[str, tuple[float, object]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> tuple[bool, object]:
        with self._lock:
            item = self._items.get(key)
        if item is None or item[0] < time.monotonic():
            return False, None
        return True, item[1]

    def put(self, key: str, value: object) -> None:
        with self._lock:
            if len(self._items) >= _MAX_ENTRIES:
                self._items.clear()
            self._items[key] = (time.monotonic() + KEY_CACHE_TTL_S, value)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


_keys = _TtlCache()
_hosts = _TtlCache()
_routes = _TtlCache()


def forget_cached_keys() -> None:
    _keys.clear()
    _hosts.clear()
    _routes.clear()


def apikey_resolve(raw: str, *, cached_only: bool = False) -> ResolvedKey | None:
    """The active key's tenant, or None for an unknown, revoked or unready key (CacheMiss: see there)."""
    digest = hash_api_key(raw)
    hit, value = _keys.get(digest)
    if hit:
        return value if isinstance(value, ResolvedKey) else None
    if cached_only:
        raise CacheMiss
    key = (
        ApiKey.objects.select_related("tenant")
        .filter(key_hash=digest, revoked_at__isnull=True, tenant__ready=True)
        .first()
    )
    resolved = ResolvedKey(key_id=key.pk, tenant=key.tenant) if key else None
    _keys.put(digest, resolved)
    return resolved


def tenant_for_host(host: str) -> Tenant | None:
    hit, value = _hosts.get(host)
    if hit:
        return value if isinstance(value, Tenant) else None
    domain = Domain.objects.select_related("tenant").filter(domain=host, tenant__ready=True).first()
    tenant = domain.tenant if domain else None
    _hosts.put(host, tenant)
    return tenant


def tenant_for_source(source_id: int, *, cached_only: bool = False) -> Tenant | None:
    cache_key = str(source_id)
    hit, value = _routes.get(cache_key)
    if hit:
        return value if isinstance(value, Tenant) else None
    if cached_only:
        raise CacheMiss
    route = SourceRoute.objects.select_related("tenant").filter(pk=source_id, tenant__ready=True).first()
    tenant = route.tenant if route else None
    _routes.put(cache_key, tenant)
    return tenant


def ready_tenants() -> list[Tenant]:
    return list(Tenant.objects.filter(ready=True).exclude(schema_name="public").order_by("pk"))
