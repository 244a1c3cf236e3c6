"""The `demo` tenant's simulated sources: their definitions, setup and simulators.

`make up` runs `manage.py simulate --demo` once the web answers; it calls,
in this order:

1. `ensure_demo_sources`: the demo sources exist in the current tenant with
   the definitions below (created, or brought back to them): three
   `simulator` sources speaking BeastFlow's own protocol, and `demo-github`,
   a GitHub-shaped upstream made from the `github-issues` preset;
2. `reset_demo_streams`: BeastFlow forgets what the previous simulator run
   delivered (see there why);
3. `start_simulator` for each: a simulated upstream on 127.0.0.1 playing its
   repeating scenario from simulator/scenarios/. The first three
   serve the change feed and snapshot (docs/contract.md §6, behind the source's
   bearer token) and push signed events and a heartbeat a second; the
   GitHub one serves a repository's issues API (Link pages, ETags, rate-limit
   headers) and pushes natively signed `issues` webhooks, no seq, no
   heartbeat (see docs/simulator.md).
"""

from __future__ import annotations

import errno
import secrets
import socket
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import structlog
from django.db import connection, transaction

from beastflow import crypto
from beastflow.env import env_int
from engines import source_ops, sources
from engines.models import Source, StreamState
from engines.schemas import DataSourceConfig
from simulator.faults import Faults
from simulator.runner import HOST, SimulatorHandle, start_in_thread
from simulator.scenario import SCENARIOS_DIR, PhaseAt

log = structlog.get_logger(__name__)

DEMO_SLUG = "demo"
HEARTBEAT_S = 1.0  # the simulators' rhythm; the sources' expected_interval_s says the same
BASE_RATE = 2.0  # mutations/s between scenario phases that set none
INITIAL_RECORDS = 50  # so the records endpoint has content within a second of the start


@dataclass(frozen=True)
class DemoSource:
    name: str
    scenario: str  # simulator/scenarios/<scenario>.yaml
    seed: int  # distinct data and fault draws per source
    port_offset: int  # its simulator listens on base port + offset
    story: str
    profile: str = "beastflow"  # the simulator profile: which upstream it pretends to be


DEMO_SOURCES: tuple[DemoSource, ...] = (
    DemoSource("demo-steady", "demo-steady", 1, 0, "healthy, with drops and a blip that do not switch it"),
    DemoSource("demo-outage", "demo-outage", 2, 1, "push outage turning total, then recovery (3 min loop)"),
    DemoSource("demo-flaky", "demo-flaky", 3, 2, "flapping push with duplicates and reordering (4 min loop)"),
    DemoSource(
        "demo-github",
        "demo-github",
        4,
        3,
        "GitHub-shaped issues: webhooks silently lost, audit polls catch up, silent deletes (4 min loop)",
        profile="github",
    ),
)
GITHUB_OWNER = "demo-org"
GITHUB_REPO = "hello-world"
# The GitHub source is checked by an audit poll this often in event mode: the
# deliveries GitHub lost show within seconds rather than the preset's minute.
GITHUB_POLL: dict[str, float] = {"min_interval_s": 1, "max_interval_s": 10, "audit_interval_s": 10}

# Tuned so that switches show within a couple of minutes (the defaults are
# for production): a short dwell and validation, a flap window that one
# scenario loop fills, and a dwell cap that keeps a flap hold under a minute.
DEMO_HYSTERESIS: dict[str, float] = {
    "fail_threshold": 3,
    "recover_threshold": 5,
    "min_dwell_s": 15,
    "max_dwell_s": 60,
    "flap_switches": 4,
    "flap_window_s": 120,
    "validation_window_s": 10,
}
DEMO_POLL: dict[str, float] = {"min_interval_s": 1, "max_interval_s": 10}
DEMO_RECONCILE: dict[str, float] = {"interval_s": 120}


def default_base_port() -> int:
    """The first simulator port; BEASTFLOW_DEMO_BASE_PORT moves them all (two checkouts side by side)."""
    return env_int("BEASTFLOW_DEMO_BASE_PORT", 9101)


def demo_ports(base_port: int) -> list[int]:
    return [base_port + spec.port_offset for spec in DEMO_SOURCES]


@dataclass(frozen=True)
class Upstream:
    """What one simulator needs to serve its source and push to it."""

    source_id: int
    name: str
    port: int
    token: str
    scenario: Path
    seed: int
    webhook_secret: str  # what its simulator signs pushes with (the push secret of a native scheme)
    story: str  # what its scenario shows, for people
    profile: str = "beastflow"
    profile_options: Mapping[str, Any] = field(default_factory=dict)

    def ingest_url(self, web_url: str) -> str:
        return f"{web_url.rstrip('/')}/api/v1/sources/{self.source_id}/events"


def source_definition(spec: DemoSource, *, port: int, token: str) -> dict[str, Any]:
    """The source as `POST /api/v1/sources` would take it (the sources API), without a push secret."""
    upstream = f"http://{HOST}:{port}"
    if spec.profile == "github":
        # Only what a tenant gives for a real repository: the preset fills the rest.
        return {
            "name": spec.name,
            "preset": "github-issues",
            "config": {
                "base_url": upstream,
                "owner": GITHUB_OWNER,
                "repo": GITHUB_REPO,
                "headers": {"Authorization": f"Bearer {token}"},
            },
            "hysteresis": DEMO_HYSTERESIS,
            "poll": GITHUB_POLL,
            "reconcile": DEMO_RECONCILE,
        }
    return {
        "name": spec.name,
        "connector": "simulator",
        "config": {
            "poll_url": f"{upstream}/changes",
            "snapshot_url": f"{upstream}/snapshot",
            "headers": {"Authorization": f"Bearer {token}"},
            "expected_interval_s": HEARTBEAT_S,
            "scenario": spec.scenario,
        },
        "hysteresis": DEMO_HYSTERESIS,
        "poll": DEMO_POLL,
        "reconcile": DEMO_RECONCILE,
    }


def ensure_demo_sources(*, base_port: int | None = None) -> list[Upstream]:
    """The demo sources in the current tenant schema, created or updated to their definitions.

    Idempotent: a second call changes nothing and keeps ids, upstream tokens
    and webhook secrets. A source whose definition drifted (another base
    port, retuned hysteresis) is updated in place, so its id stays valid.
    """
    port = default_base_port() if base_port is None else base_port
    return [_upstream(spec, _ensure_one(spec, base_port=port)) for spec in DEMO_SOURCES]


def _ensure_one(spec: DemoSource, *, base_port: int) -> Source:
    existing = Source.objects.filter(name=spec.name).first()
    token = _bearer_token(existing) or secrets.token_urlsafe(18)
    definition = source_definition(spec, port=base_port + spec.port_offset, token=token)
    if spec.profile != "beastflow" and (existing is None or not existing.push_secret_encrypted):
        # The secret "set on the upstream's webhook": the simulator is that upstream.
        definition["push"] = {"secret": secrets.token_urlsafe(24)}
    parsed = sources.parse_spec(definition)
    if existing is None:
        created, _ = sources.source_create(spec=parsed)
        return created
    if sources.source_spec(existing) != _stored_form(parsed):
        return sources.source_update(source=existing, changes=definition)
    return existing


def _stored_form(spec: DataSourceConfig) -> dict[str, Any]:
    # What source_create stores: the connector config with its defaults filled
    # in, the push block without its secret. Comparing in this form is what
    # makes a repeated call write nothing.
    data = spec.model_dump(mode="json")
    data["config"] = spec.connector_config().model_dump(mode="json")
    data["push"] = spec.push.stored()
    return {name: data[name] for name in sources.EDITABLE}


def _bearer_token(source: Source | None) -> str:
    if source is None:
        return ""
    headers = source.config.get("headers") or {}
    value = str(headers.get("Authorization", ""))
    return value.removeprefix("Bearer ") if value.startswith("Bearer ") else ""


def _upstream(spec: DemoSource, source: Source) -> Upstream:
    port = urlsplit(source.config.get("poll_url") or source.config["base_url"]).port
    if port is None:  # source_definition always writes one
        raise ValueError(f"{source.name}: its upstream URL has no port")
    options: dict[str, Any] = {}
    if spec.profile == "github":
        options = {"owner": source.config["owner"], "repo": source.config["repo"], "ping_every_s": 60.0}
    return Upstream(
        source_id=source.pk,
        name=source.name,
        port=port,
        token=_bearer_token(source),
        scenario=SCENARIOS_DIR / f"{source.config.get('scenario') or spec.scenario}.yaml",
        seed=spec.seed,
        webhook_secret=_readable_secret(source) if spec.profile == "beastflow" else _readable_push_secret(source),
        story=spec.story,
        profile=spec.profile,
        profile_options=options,
    )


def _readable_secret(source: Source) -> str:
    """The demo source's webhook secret; a new one when this checkout's key cannot read the stored one.

    The database outlives a checkout (a second clone on the same machine
    uses the same local PostgreSQL, but derives another encryption key from
    its own secret key): the demo's simulators are ours, so they are simply
    given a fresh secret.
    """
    try:
        return sources.webhook_secret(source)
    except crypto.InvalidToken:
        secret = source_ops.webhook_secret_rotate(source)
        log.warning("demo_webhook_secret_reissued", source=source.pk, reason="stored with another encryption key")
        return secret


def _readable_push_secret(source: Source) -> str:
    """The secret the demo's native upstream signs with; a new one when it cannot be read (see above)."""
    try:
        secret = sources.push_secret(source)
    except crypto.InvalidToken:
        secret = None
    if secret is None:
        secret = secrets.token_urlsafe(24)
        Source.objects.filter(pk=source.pk).update(push_secret_encrypted=crypto.encrypt(secret))
        log.warning("demo_push_secret_reissued", source=source.pk, reason="unreadable or missing")
    return secret


@transaction.atomic
def reset_demo_streams(*, source_ids: Sequence[int]) -> None:
    """Forget what earlier simulator runs delivered to these sources.

    A simulator keeps its truth in memory: a restarted one is a new upstream
    whose seqs and record versions start again at 1 (the simulator has no
    way to start from a given seq or version). Kept, the old run's state
    would hide the new one: `contiguous_seq` far above the new seqs (no gap
    ever seen, polls asking for seqs after it) and records whose versions
    outrank every new event (stale forever, drift reconciliation cannot
    correct). So the seq tracking restarts and the sources' events, records
    and changes go; mode, hysteresis, push times and totals stay, as they
    describe BeastFlow, not the upstream.
    """
    ids = list(source_ids)
    # One statement per table, like source_delete: these tables are large
    # and are not loaded into Python.
    with connection.cursor() as cursor:
        for table in ("engines_change", "engines_record", "engines_event"):
            cursor.execute(f"DELETE FROM {table} WHERE source_id = ANY(%s)", [ids])  # noqa: S608
    StreamState.objects.filter(source_id__in=ids).update(
        contiguous_seq=None, highest_seq=None, upstream_seq=None, pending_seqs=[]
    )
    log.info("demo_streams_reset", sources=ids)


def ports_in_use(ports: Iterable[int]) -> list[int]:
    """Those of `ports` that a simulator could not bind on 127.0.0.1 now."""
    busy = []
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            # Same option as the runner: a port in TIME_WAIT from our last run is free.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((HOST, port))
            except OSError as exc:
                if exc.errno not in (errno.EADDRINUSE, errno.EACCES):
                    raise
                busy.append(port)
    return busy


def start_simulator(upstream: Upstream, *, web_url: str, control_token: str | None = None) -> SimulatorHandle:
    """Run the upstream's simulator in a daemon thread, pushing to `web_url`.

    `control_token` guards its control API (None: one of its own).

    Raises OSError when its port is taken.
    """
    handle = start_in_thread(
        port=upstream.port,
        ingest_url=upstream.ingest_url(web_url),
        webhook_secret=upstream.webhook_secret,
        token=upstream.token,
        scenario=upstream.scenario,
        seed=upstream.seed,
        mutations_per_s=BASE_RATE,
        heartbeat_s=HEARTBEAT_S,
        initial_records=INITIAL_RECORDS,
        # Unique per run: event ids embed it, and dedup by id must never
        # swallow a new run's event as a repeat of an old one.
        run_id=f"{upstream.name}-{secrets.token_hex(3)}",
        profile=upstream.profile,
        profile_options=upstream.profile_options,
        control_token=control_token,
    )
    player = handle.sim.player
    log.info(
        "simulator_started",
        source=upstream.name,
        source_id=upstream.source_id,
        upstream=handle.base_url,
        ingest_url=upstream.ingest_url(web_url),
        scenario=upstream.scenario.stem,
        profile=upstream.profile,
        cycle_s=None if player is None else player.scenario.cycle_s,
    )
    return handle


class PhaseLog:
    """Logs one line each time a simulator's scenario enters a phase."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[int, int]] = {}

    def check(self, handles: Mapping[str, SimulatorHandle]) -> None:
        for name, handle in handles.items():
            phase: PhaseAt | None = handle.sim.phase  # one attribute read: safe across threads
            if phase is None or self._seen.get(name) == (phase.index, phase.loop):
                continue
            self._seen[name] = (phase.index, phase.loop)
            log.info(
                "simulator_phase",
                source=name,
                phase=phase.phase.name,
                index=phase.index,
                loop=phase.loop,
                duration_s=phase.phase.duration_s,
                faults=_switched_on(phase.phase.faults),
            )


def _switched_on(faults: Faults) -> dict[str, Any]:
    # Only the faults that differ from none: the full set is twenty fields of noise.
    return {name: value for name, value in faults.as_dict().items() if value != _NO_FAULTS[name]}


_NO_FAULTS = Faults().as_dict()
