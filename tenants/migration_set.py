"""Which migrations a schema should have, and which schemas lack some (pure: no ORM, no I/O).

A migration is a node `(app_label, name)` of Django's migration graph. Every
schema django-tenants migrates (public, each tenant, the template) records
every node of the graph in its own `django_migrations` table, including the
apps whose tables live elsewhere (the router skips their operations, not
their rows). So "nothing pending" for a schema is "its rows cover the graph".
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

Node = tuple[str, str]


def fingerprint(nodes: Iterable[Node], *, salt: str = "") -> str:
    """A short stable digest of a migration set; `salt` versions whatever else shaped the result."""
    digest = hashlib.sha256(salt.encode())
    for app, name in sorted(set(nodes)):
        digest.update(f"\n{app}.{name}".encode())
    return digest.hexdigest()[:24]


@dataclass(frozen=True)
class SchemaState:
    """What one schema lacks: `missing` nodes, or no migrations table at all."""

    schema: str
    missing: frozenset[Node]
    has_table: bool = True

    @property
    def pending(self) -> bool:
        return bool(self.missing) or not self.has_table


def schema_states(
    expected: frozenset[Node], applied: Mapping[str, Iterable[Node]], schemas: Iterable[str]
) -> list[SchemaState]:
    """One state per schema, in the order given.

    `applied` maps a schema to the rows of its django_migrations table; a
    schema absent from it has no such table (a schema created but never
    migrated), which is pending whatever `expected` holds. Rows naming
    migrations that no longer exist on disk are ignored: they are not work.
    """
    states = []
    for schema in schemas:
        rows = applied.get(schema)
        if rows is None:
            states.append(SchemaState(schema=schema, missing=expected, has_table=False))
            continue
        states.append(SchemaState(schema=schema, missing=expected - frozenset(rows)))
    return states
