"""The batched judge: many sources judged together, in bulk, across tenants.

What one judgement decides is exactly what `engines.monitor` always did for
one source (signals -> health -> hysteresis -> writes); the pure parts are
the same functions (engines/health.py, engines/hysteresis.py). What changes
is the I/O: per batch, not per source, and not per tenant either. With a
thousand tenants a batch of 200 due sources spans nearly 200 schemas, so a
round trip per schema would be a round trip per source again. The
statements name each schema's tables themselves (`"t_acme".engines_source`),
one small statement per schema, and go to PostgreSQL in one pipelined round
trip per step (beastflow/sqlpipe.py: a single statement over 200 schemas,
a UNION ALL or a chain of CTEs, cost PostgreSQL more to plan and start than
200 small ones):

1. the sources and their stream state, one SELECT per schema (the
   single-tenant entry point gets them from the ORM);
2. one Redis pipeline reads the monitor's memory (rates since the last
   judgement), one writes it back;
3. for the sources in hybrid only, one GROUP BY over poll runs and events
   per schema (the only mode whose decision reads them);
4. per schema, one compare-and-set of the state, score and verdict of the
   sources whose judgement changed them (a settled stream's does not: it
   writes nothing) and one insert of the health samples due;
5. one statement writes the next deadlines (engines/deadlines.py) to the
   public schedule;
6. only what is rare goes source by source, in its tenant's context: a
   switch with its audit row, a flapping or stream failure, a gap-fill poll.

The consoles get one message per tenant and batch, only when somebody watches.
"""

from __future__ import annotations

import contextlib
import json
import random
import time
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django_tenants.utils import tenant_context
from prometheus_client import Histogram

from beastflow.redis_client import get_redis, key
from beastflow.sqlpipe import Statement, run_pipelined
from beastflow.tenancy import current_schema
from engines import outbound
from engines.deadlines import Cadence, next_judgement
from engines.health import StreamHealth, StreamSignals, score_stream, silent
from engines.hysteresis import Decision, HysteresisPolicy, HysteresisState, ValidationResult, decide
from engines.models import Event, HealthSample, PollRun, PollStatus, Source, StreamState
from engines.modes import Mode
from engines.monitor import (
    MISS_GRACE_S,
    RATE_BASELINE_ALPHA,
    SAMPLE_EVERY_S,
    TICK_SECONDS,
    TICKS,
    Window,
    _maybe_gap_fill,
    _store,
    health_policy,
    signals_for,
)
from engines.source_ops import hysteresis_state
from engines.watch import outage_key, outage_parse
from scheduling.claims import Claim
from scheduling.services import source_evals_set
from tenants.models import Tenant

log = structlog.get_logger(__name__)

JUDGE_LAG = Histogram(
    "beastflow_monitor_judge_lag_seconds",
    "How long after its deadline a source was judged",
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
)
BATCH_SECONDS = Histogram("beastflow_monitor_batch_seconds", "Time to judge one batch of sources")

MEMORY_TTL_S = 3600


def cadence() -> Cadence:
    return Cadence(
        tick_s=settings.BEASTFLOW_MONITOR_TICK_S,
        dormant_s=settings.BEASTFLOW_MONITOR_DORMANT_S,
        active_s=settings.BEASTFLOW_MONITOR_ACTIVE_S,
        idle_s=max(settings.BEASTFLOW_MONITOR_IDLE_S, settings.BEASTFLOW_MONITOR_TICK_S),
    )


@dataclass(frozen=True)
class _Item:
    """A source to judge, with its stream row and where it lives (tenant None: the connection's own)."""

    schema: str
    tenant: Tenant | None
    source: Source
    stream: StreamState


@dataclass(frozen=True)
class _Memory:
    """What the window read from Redis, and what to write back."""

    window: Window
    moved: bool
    write: dict[str, float]


@dataclass
class _Case:
    """One source on its way through the batch."""

    item: _Item
    memory: _Memory
    health: StreamHealth
    signals: StreamSignals
    state: HysteresisState
    policy: HysteresisPolicy
    decision: Decision | None = None
    validation: ValidationResult | None = None
    stored: bool = False

    @property
    def source(self) -> Source:
        return self.item.source


# -- entry points ---------------------------------------------------------------------


def judge_sources(
    sources: Sequence[Source],
    *,
    now: float | None = None,
    due: Mapping[int, float] | None = None,
    leases: Mapping[int, datetime] | None = None,
    rates: dict[int, float | None] | None = None,
    live: bool = False,
) -> dict[int, StreamHealth]:
    """Judge these sources of the current tenant now; returns each one's health.

    `due`: when each became due (epoch), for the lag measure. `leases`: the
    claim each was taken under (scheduling.claims), so a wake that came in
    meanwhile is not overwritten. `rates` collects the delivery rates
    measured. `live`: tell the tenant's open consoles.
    """
    schema = current_schema()
    streams = _streams(sources)
    for missing in (s for s in sources if s.pk not in streams):
        log.warning("monitor_stream_missing", source=missing.pk)
    items = [_Item(schema, None, s, streams[s.pk]) for s in sources if s.pk in streams]
    return _judge(items, now=now, due=due, leases=leases, rates=rates, live=live)


def monitor_source(
    source: Source, *, now: float | None = None, rates: dict[int, float | None] | None = None
) -> StreamHealth:
    """Judge one source now. Steps: signals -> health -> decision -> writes.

    `rates` collects the delivery rate measured, for the console.
    """
    return judge_sources([source], now=now, rates=rates)[source.pk]


def monitor_tenant() -> int:
    """Judge every source with a push stream (unpaused, push expected) at once, whatever their deadlines.

    Returns how many were judged. The scheduler judges sources by deadline
    (engines/tasks.py); this is for operators and tests that want every
    source looked at now.
    """
    started = time.perf_counter()
    rates: dict[int, float | None] = {}
    sources = list(Source.objects.filter(paused=False).select_related("stream").order_by("pk"))
    judged = judge_sources([s for s in sources if _judged(s)], rates=rates, live=True)
    TICK_SECONDS.observe(time.perf_counter() - started)
    return len(judged)


def judge_claims(groups: Sequence[tuple[Tenant, Sequence[Claim]]], *, now: float | None = None) -> int:
    """Judge claimed sources of many tenants in one batch; returns how many were judged.

    Paused sources leave the schedule (resuming one wakes it), and so do
    sources that expect no push (`push.expected` false: nothing to judge,
    they are polled only; setting it back wakes them); the others are
    judged and get their next deadline, written against their claim.
    """
    due = {claim.id: claim.due_at.timestamp() for _, claims in groups for claim in claims}
    leases = {claim.id: claim.lease_until for _, claims in groups for claim in claims}
    items = _load(groups)
    resting = [(item.source.pk, None) for item in items if not _judged(item.source)]
    if resting:
        source_evals_set(resting, leases=leases)
    active = [item for item in items if _judged(item.source)]
    return len(_judge(active, now=now, due=due, leases=leases, rates={}, live=True))


def _judged(source: Source) -> bool:
    """Whether the monitor has a push stream to judge: unpaused, and pushes are expected."""
    return not source.paused and source.push_expected


# -- loading ---------------------------------------------------------------------------


def _streams(sources: Sequence[Source]) -> dict[int, StreamState]:
    """The sources' stream rows: those loaded with them (select_related), the rest in one query."""
    found: dict[int, StreamState] = {}
    for source in sources:
        if "stream" in source._state.fields_cache:
            found[source.pk] = source.stream
    missing = [s.pk for s in sources if s.pk not in found]
    if missing:
        found.update({row.source_id: row for row in StreamState.objects.filter(source_id__in=missing)})
    return found


def _load(groups: Sequence[tuple[Tenant, Sequence[Claim]]]) -> list[_Item]:
    """Sources and stream rows of every group: one small statement per schema, all in one round trip.

    Not one `UNION ALL` over the schemas: PostgreSQL plans and starts such a
    statement as a whole, which cost more per schema than these small
    statements do (beastflow/sqlpipe.py has the figures).
    """
    source_fields = list(Source._meta.concrete_fields)
    stream_fields = list(StreamState._meta.concrete_fields)
    columns = ", ".join(
        [f"s.{connection.ops.quote_name(str(f.column))}" for f in source_fields]
        + [f"st.{connection.ops.quote_name(str(f.column))}" for f in stream_fields]
    )
    statements: list[Statement] = []
    for tenant, claims in groups:
        schema = connection.ops.quote_name(tenant.schema_name)
        statements.append(
            (
                f"SELECT {columns} FROM {schema}.{Source._meta.db_table} AS s "  # noqa: S608 (names from the catalog)
                f"JOIN {schema}.{StreamState._meta.db_table} AS st ON st.source_id = s.id WHERE s.id = ANY(%s)",
                [[claim.id for claim in claims]],
            )
        )
    items = []
    width = len(source_fields)
    for (tenant, _), rows in zip(groups, run_pipelined(statements), strict=True):
        for values in rows:
            source = Source.from_db(
                "default", [f.attname for f in source_fields], _db_values(source_fields, values[:width])
            )
            stream = StreamState.from_db(
                "default", [f.attname for f in stream_fields], _db_values(stream_fields, values[width:])
            )
            items.append(_Item(tenant.schema_name, tenant, source, stream))
    return items


def _db_values(fields: Sequence[Any], values: Sequence[Any]) -> list[Any]:
    """What raw SQL returned, as the ORM would have read it (JSON columns come back as text)."""
    return [
        f.from_db_value(value, None, connection) if hasattr(f, "from_db_value") else value
        for f, value in zip(fields, values, strict=True)
    ]


# -- the judgement -----------------------------------------------------------------------


def _judge(
    items: Sequence[_Item],
    *,
    now: float | None,
    due: Mapping[int, float] | None,
    leases: Mapping[int, datetime] | None,
    rates: dict[int, float | None] | None,
    live: bool,
) -> dict[int, StreamHealth]:
    now = time.time() if now is None else now
    started = time.perf_counter()
    if not items:
        return {}
    memories, outage = _read_memories(items, now, due or {})
    cases: list[_Case] = []
    for item in items:
        source, stream, memory = item.source, item.stream, memories[item.source.pk]
        try:
            signals = signals_for(source, stream, memory.window, now, outage=outage)
            health = score_stream(signals, health_policy(source))
            policy = HysteresisPolicy.from_config(source.hysteresis or {})
            cases.append(_Case(item, memory, health, signals, hysteresis_state(source, now), policy))
        except Exception:
            # One broken source must not blind the monitor to the others; it stays
            # claimed and is tried again when its lease ends.
            log.exception("monitor_source_failed", source=source.pk)
            continue
        TICKS.labels(verdict=health.verdict.value).inc()
        if rates is not None:
            rates[source.pk] = memory.window.delivery_rate
    facts = _poll_facts_by_schema([c for c in cases if c.state.mode is Mode.HYBRID])
    for case in cases:
        caught_up, validation = facts.get(case.source.pk, (False, None))
        case.validation = validation
        case.decision = decide(
            case.state,
            verdict=case.health.verdict,
            now=now,
            policy=case.policy,
            caught_up=caught_up,
            validation=validation,
            silent=silent(case.health),
        )
    _write(cases)
    _schedule(cases, now=now, leases=leases)
    for case in cases:
        _gap_fill(case)
    for due_at in (due or {}).values():
        JUDGE_LAG.observe(max(0.0, now - due_at))
    BATCH_SECONDS.observe(time.perf_counter() - started)
    if live and cases:
        _tell_consoles(cases, rates)
    return {case.source.pk: case.health for case in cases}


@contextlib.contextmanager
def _context(item: _Item) -> Iterator[None]:
    """The item's tenant schema on the connection, for the ORM's per-source writes."""
    if item.tenant is None:
        yield
    else:
        with tenant_context(item.tenant):
            yield


# -- the monitor's memory (Redis) ------------------------------------------------


def memory_key(schema: str, source_id: int) -> str:
    return key("monitor", schema, source_id)


def _read_memories(
    items: Sequence[_Item], now: float, due: Mapping[int, float]
) -> tuple[dict[int, _Memory], tuple[float, float] | None]:
    """Rates since each source's previous judgement, from counters remembered in Redis; BeastFlow's latest outage.

    Redis holds only this soft memory: after a flush the first judgement has
    no rate (None, which never counts against a stream) and the next one
    does. The baseline's smoothing is scaled by the time since the previous
    judgement, so a source judged every tick learns it as before and one
    judged once a minute does not learn sixty times slower.
    """
    client = get_redis()
    with client.pipeline(transaction=False) as pipe:
        for item in items:
            pipe.hgetall(memory_key(item.schema, item.source.pk))
        pipe.get(outage_key())  # in the same round trip (engines/watch.py)
        *raws, raw_outage = pipe.execute()
    memories: dict[int, _Memory] = {}
    tick = max(settings.BEASTFLOW_MONITOR_TICK_S, 1e-3)
    for item, raw in zip(items, raws, strict=True):
        stream = item.stream
        before = {k.decode(): float(v) for k, v in (raw or {}).items()}
        rate = baseline = None
        errors = total = 0
        arrived = 0.0
        if "at" in before and now > before["at"]:
            elapsed = now - before["at"]
            arrived = max(0.0, stream.events_total - before.get("events", 0.0))
            errors = int(max(0.0, stream.push_errors_total - before.get("errors", 0.0)))
            total = int(arrived) + errors
            rate = arrived / elapsed
            previous = before.get("baseline")
            alpha = 1 - (1 - RATE_BASELINE_ALPHA) ** (elapsed / tick)
            baseline = rate if previous is None else (1 - alpha) * previous + alpha * rate
        heartbeat = stream.last_heartbeat_at.timestamp() if stream.last_heartbeat_at else 0.0
        moved = "at" not in before or arrived > 0 or errors > 0 or heartbeat != before.get("hb", 0.0)
        sample_due = now - before.get("sampled", 0.0) >= SAMPLE_EVERY_S
        write: dict[str, float] = {
            "at": now,
            "events": stream.events_total,
            "errors": stream.push_errors_total,
            "hb": heartbeat,
        }
        if baseline is not None:
            write["baseline"] = baseline
        if sample_due:
            write["sampled"] = now
        if item.source.pk in due:
            write["due"] = due[item.source.pk]  # what bench/scale.py reads to measure the lag per judgement
        memories[item.source.pk] = _Memory(Window(rate, baseline, errors, total, sample_due), moved, write)
    with client.pipeline(transaction=False) as pipe:
        for item in items:
            name = memory_key(item.schema, item.source.pk)
            pipe.hset(name, mapping=memories[item.source.pk].write)  # type: ignore[arg-type]
            pipe.expire(name, MEMORY_TTL_S)
        pipe.execute()
    return memories, outage_parse(raw_outage)


# -- what the polls found (hybrid only) -------------------------------------------


def _poll_facts_by_schema(cases: Sequence[_Case]) -> dict[int, tuple[bool, ValidationResult | None]]:
    """`poll_facts` for the hybrid sources of every schema in the batch, one statement each, one round trip."""
    by_schema: dict[str, list[tuple[Source, HysteresisState]]] = defaultdict(list)
    for case in cases:
        by_schema[case.item.schema].append((case.source, case.state))
    groups = list(by_schema.items())
    answers = run_pipelined([_poll_facts_statement(pairs, schema=schema) for schema, pairs in groups])
    facts: dict[int, tuple[bool, ValidationResult | None]] = {}
    for (_, pairs), rows in zip(groups, answers, strict=True):
        facts.update(_poll_facts_read(pairs, rows))
    return facts


def poll_facts(
    pairs: Sequence[tuple[Source, HysteresisState]], *, schema: str | None = None
) -> dict[int, tuple[bool, ValidationResult | None]]:
    """For sources in hybrid: did a poll since the mode began reach the head; what did polls find push missed?

    One statement for the sources of one schema (`schema`: named in the
    statement; None: the connection's own). Since the mode began
    (`state.since`): succeeded poll runs, whether one caught up, and the
    events push missed: for `rest` sources the changes their polls counted
    past the grace (PollRun.missed, engines/connectors/rest_poll.py: a rest poll
    re-fetches records push delivered under other ids), for the others the
    events polls brought that push had had `MISS_GRACE_S` to deliver.
    """
    if not pairs:
        return {}
    sql, params = _poll_facts_statement(pairs, schema=schema)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return _poll_facts_read(pairs, cursor.fetchall())


def _poll_facts_statement(pairs: Sequence[tuple[Source, HysteresisState]], *, schema: str | None) -> Statement:
    rows = [
        {
            "id": source.pk,
            "since": datetime.fromtimestamp(state.since, tz=UTC).isoformat(),
            "rest": source.connector == "rest",
        }
        for source, state in pairs
    ]
    prefix = f"{connection.ops.quote_name(schema)}." if schema else ""
    sql = f"""
        WITH v AS (
            SELECT * FROM jsonb_to_recordset(%s::jsonb) AS v(id bigint, since timestamptz, rest boolean)
        ),
        p AS (
            SELECT v.id, bool_or(p.caught_up) AS caught_up, count(*) AS polls, coalesce(sum(p.missed), 0) AS missed
            FROM v JOIN {prefix}{PollRun._meta.db_table} AS p
              ON p.source_id = v.id AND p.status = %s AND p.started_at >= v.since
            GROUP BY v.id
        ),
        e AS (
            SELECT v.id, count(*) AS missed
            FROM v JOIN {prefix}{Event._meta.db_table} AS e
              ON e.source_id = v.id AND e.received_at >= v.since AND e.origin <> 'push'
             AND (e.occurred_at IS NULL OR e.occurred_at < e.received_at - make_interval(secs => %s))
            WHERE NOT v.rest
            GROUP BY v.id
        )
        SELECT v.id, coalesce(p.caught_up, false), coalesce(p.polls, 0),
               CASE WHEN v.rest THEN coalesce(p.missed, 0) ELSE coalesce(e.missed, 0) END
        FROM v LEFT JOIN p ON p.id = v.id LEFT JOIN e ON e.id = v.id
    """  # noqa: S608 (fixed names)
    return sql, [json.dumps(rows), PollStatus.SUCCEEDED.value, MISS_GRACE_S]


def _poll_facts_read(
    pairs: Sequence[tuple[Source, HysteresisState]], rows: Sequence[tuple[Any, ...]]
) -> dict[int, tuple[bool, ValidationResult | None]]:
    found = {row[0]: (bool(row[1]), int(row[2]), int(row[3])) for row in rows}
    facts: dict[int, tuple[bool, ValidationResult | None]] = {}
    for source, _ in pairs:
        caught_up, polls, missed = found.get(source.pk, (False, 0, 0))
        facts[source.pk] = (caught_up, ValidationResult(polls=polls, missed=missed) if polls else None)
    return facts


# -- writes -----------------------------------------------------------------------


def _write(cases: list[_Case]) -> None:
    staying = [c for c in cases if c.decision is not None and not c.decision.switched]
    switching = [c for c in cases if c.decision is not None and c.decision.switched]
    at = timezone.now()
    with transaction.atomic():
        stored = _store_and_sample(staying, at)
        for case in staying:
            case.stored = case.source.pk in stored
            assert case.decision is not None
            if case.decision.flapping and case.stored:  # one another writer overtook is decided again
                with _context(case.item):
                    _report_flapping(case)
    for case in switching:
        # Rare, and each its own transaction: a switch, its audit row, its failure, its sample.
        try:
            with _context(case.item), transaction.atomic():
                assert case.decision is not None
                evidence: dict[str, Any] = {"health": case.health.as_dict(), "signals": case.signals.as_dict()}
                if case.validation is not None:
                    evidence["validation"] = {"polls": case.validation.polls, "missed": case.validation.missed}
                case.stored = _store(case.source, case.decision, case.health, case.signals, evidence)
                if case.decision.flapping and case.stored:
                    _report_flapping(case)
                HealthSample.objects.create(**_sample_fields(case, timezone.now()))
        except Exception:
            # One broken source must not blind the monitor to the others.
            log.exception("monitor_source_failed", source=case.source.pk)


def _store_and_sample(cases: list[_Case], at: datetime) -> set[int]:
    """Compare-and-set every staying source's state, score and verdict, and insert the samples due;
    returns the ids stored.

    Only where mode and state are still what this batch read (unlocked): a
    hold an operator or a healing action wrote meanwhile wins, and the next
    judgement decides from it. A judgement that changes nothing (most do: a
    settled stream keeps its state, score and verdict) writes nothing and
    counts as stored; a writer that changed the row meanwhile also woke the
    source's deadline (scheduling.services.source_wake), so it is judged
    again from the new state. Per schema at most two small statements, all
    the batch's in one round trip (beastflow/sqlpipe.py).
    """
    if not cases:
        return set()
    stored: set[int] = set()
    states: dict[str, list[dict[str, Any]]] = defaultdict(list)
    samples: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for case in cases:
        assert case.decision is not None
        new = case.decision.state.to_dict()
        source = case.source
        if new == source.hysteresis_state and (source.health_score, source.verdict) == (
            case.health.score,
            case.health.verdict.value,
        ):
            stored.add(source.pk)
        else:
            states[case.item.schema].append(
                {
                    "id": source.pk,
                    "mode": source.mode,
                    "old": source.hysteresis_state,
                    "new": new,
                    "score": case.health.score,
                    "verdict": case.health.verdict.value,
                }
            )
        if case.memory.window.sample_due:
            sample = _sample_fields(case, at)
            sample["id"], sample["at"] = sample.pop("source_id"), at.isoformat()
            samples[case.item.schema].append(sample)
    statements: list[Statement] = []
    for schema, rows in states.items():
        statements.append(
            (
                f"UPDATE {connection.ops.quote_name(schema)}.{Source._meta.db_table} AS s "  # noqa: S608 (catalog names)
                "SET hysteresis_state = v.new, health_score = v.score, verdict = v.verdict "
                "FROM jsonb_to_recordset(%s::jsonb) "
                "AS v(id bigint, mode text, old jsonb, new jsonb, score int, verdict text) "
                "WHERE s.id = v.id AND s.mode = v.mode AND s.hysteresis_state = v.old RETURNING s.id",
                [json.dumps(rows)],
            )
        )
    for schema, rows in samples.items():
        statements.append(
            (
                f"INSERT INTO {connection.ops.quote_name(schema)}.{HealthSample._meta.db_table} "  # noqa: S608
                "(source_id, at, score, verdict, mode, delivery_rate, measures) "
                "SELECT id, at, score, verdict, mode, delivery_rate, measures FROM jsonb_to_recordset(%s::jsonb) "
                "AS v(id bigint, at timestamptz, score int, verdict text, mode text, delivery_rate float8, "
                "measures jsonb)",
                [json.dumps(rows)],
            )
        )
    for answer in run_pipelined(statements):
        stored.update(row[0] for row in answer)
    for case in cases:
        if case.source.pk in stored:
            assert case.decision is not None
            case.source.hysteresis_state = case.decision.state.to_dict()
            case.source.health_score = case.health.score
            case.source.verdict = case.health.verdict.value
    return stored


def _report_flapping(case: _Case) -> None:
    decision = case.decision
    assert decision is not None
    outbound.announce(
        outbound.FailureObserved(
            kind="flapping",
            source_id=case.source.pk,
            identity={},
            detail={
                "reason": decision.reason,
                "switches": list(decision.state.switches),
                "silences": list(decision.state.silences),
                # How long the hold contains it: healing judges its strategies after this.
                "held_until": datetime.fromtimestamp(decision.state.hold_until, tz=UTC).isoformat(),
            },
        )
    )


def _sample_fields(case: _Case, at: datetime) -> dict[str, Any]:
    return {
        "source_id": case.source.pk,
        "at": at,
        "score": case.health.score,
        "verdict": case.health.verdict.value,
        "mode": case.source.mode,
        "delivery_rate": case.memory.window.delivery_rate,
        "measures": case.health.measures,
    }


def _schedule(cases: list[_Case], *, now: float, leases: Mapping[int, datetime] | None) -> None:
    """Each source's next deadline; a decision another writer overtook is made again next tick."""
    plan = cadence()
    rows: list[tuple[int, datetime | None]] = []
    for case in cases:
        assert case.decision is not None
        if case.stored:
            after = case.decision.state
            at = next_judgement(
                now=now,
                cadence=plan,
                health=case.health,
                state=after,
                switched=case.decision.switched,
                moved=case.memory.moved,
                validation_ends_at=after.since + case.policy.validation_window_s,
                spread=random.random(),  # a spread of deadlines, not a secret
            )
        else:
            at = now + plan.tick_s
        rows.append((case.source.pk, datetime.fromtimestamp(at, tz=UTC)))
    source_evals_set(rows, leases=dict(leases) if leases else None)


def _gap_fill(case: _Case) -> None:
    """A targeted poll for a small gap (monitor._maybe_gap_fill), in the source's tenant."""
    stream = case.item.stream
    if stream.contiguous_seq is None or case.source.mode != Mode.EVENT.value:
        return  # nothing gap_fill_request could ask for: no tenant switch for it
    try:
        with _context(case.item):
            _maybe_gap_fill(case.source, stream)
    except Exception:
        log.exception("gap_fill_failed", source=case.source.pk)


def _tell_consoles(cases: list[_Case], rates: Mapping[int, float | None] | None) -> None:
    by_schema: dict[str, list[int]] = defaultdict(list)
    for case in cases:
        by_schema[case.item.schema].append(case.source.pk)
    outbound.announce(outbound.SourcesJudged(by_schema=by_schema, rates=rates))
