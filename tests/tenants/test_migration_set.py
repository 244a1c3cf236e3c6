"""Pure: migration-set fingerprints and which schemas have pending migrations."""

from __future__ import annotations

from tenants.migration_set import fingerprint, schema_states

GRAPH = frozenset({("engines", "0001_initial"), ("engines", "0002_ingest"), ("tenants", "0001_initial")})


def test_fingerprint_ignores_order_and_repeats() -> None:
    assert fingerprint(sorted(GRAPH)) == fingerprint([*reversed(sorted(GRAPH)), ("engines", "0002_ingest")])


def test_fingerprint_changes_with_a_new_migration_and_with_the_salt() -> None:
    grown = GRAPH | {("engines", "0003_more")}
    assert fingerprint(grown) != fingerprint(GRAPH)
    assert fingerprint(GRAPH, salt="2") != fingerprint(GRAPH, salt="1")


def test_a_schema_with_every_migration_has_nothing_pending() -> None:
    # when
    (state,) = schema_states(GRAPH, {"t_acme": GRAPH}, ["t_acme"])
    # then
    assert not state.pending
    assert state.missing == frozenset()


def test_a_schema_lacking_a_migration_names_it() -> None:
    # given
    applied = {"t_acme": GRAPH - {("engines", "0002_ingest")}, "t_globex": GRAPH}
    # when
    acme, globex = schema_states(GRAPH, applied, ["t_acme", "t_globex"])
    # then
    assert acme.pending and acme.missing == {("engines", "0002_ingest")}
    assert not globex.pending


def test_a_schema_without_a_migrations_table_is_pending() -> None:
    (state,) = schema_states(GRAPH, {}, ["t_new"])
    assert state.pending and not state.has_table
    assert state.missing == GRAPH


def test_rows_of_migrations_no_longer_on_disk_are_not_work() -> None:
    (state,) = schema_states(GRAPH, {"t_old": GRAPH | {("engines", "0001_squashed_away")}}, ["t_old"])
    assert not state.pending
