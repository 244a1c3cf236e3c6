"""`manage.py simulate`: run simulated upstreams in the foreground until Ctrl-C or SIGTERM.

- `simulate --port 9101 [--ingest-url URL --secret S --token T --scenario FILE|NAME --seed N --rate R]`:
  one simulator (simulator.runner.run), e.g. for a source you created yourself;
  `--profile github --owner O --repo R [--rate-limit N --rate-window S]` or `--profile stripe`
  makes it a GitHub- or Stripe-shaped upstream (see docs/simulator.md).
- `simulate --demo [--base-port 9101] [--web-url http://127.0.0.1:8000]`: the `demo` tenant's
  sources and their simulators (engines.demo), as `make up` runs it.

The control API of every simulator started here needs a bearer token:
`--control-token`, else BEASTFLOW_SIMULATOR_TOKEN, else one generated for
the run. The demo writes it to `<state dir>/simulator-control-token` (0600),
where whoever drives the demo's upstreams reads it (docs/simulator.md).
"""

from __future__ import annotations

import errno
import logging
import os
import secrets
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import structlog
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections
from django_tenants.utils import tenant_context

from engines import demo
from simulator import runner
from simulator.profiles import PROFILES
from simulator.scenario import SCENARIOS_DIR, ScenarioError, load_scenario
from tenants.models import Tenant

log = structlog.get_logger(__name__)

CONTROL_TOKEN_ENV = "BEASTFLOW_SIMULATOR_TOKEN"  # noqa: S105 (the variable's name)
WATCH_S = 0.25  # how often the demo checks for phase changes and dead simulators


class Command(BaseCommand):
    help = "Run one simulated upstream (--port) or the demo tenant's (--demo) until Ctrl-C."

    def add_arguments(self, parser: CommandParser) -> None:
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--port", type=int, help="Serve one simulator on 127.0.0.1:PORT.")
        which.add_argument("--demo", action="store_true", help="Run the demo tenant's sources and simulators.")
        one = parser.add_argument_group("one simulator (--port)")
        one.add_argument("--ingest-url", help="Push events and heartbeats here (none: serve the feed only).")
        one.add_argument("--secret", help="Webhook secret that signs the pushes.")
        one.add_argument("--token", help="Bearer token the feed and snapshot require.")
        parser.add_argument(
            "--control-token",
            default=os.environ.get(CONTROL_TOKEN_ENV) or None,
            help=f"Bearer token the control API requires (default ${CONTROL_TOKEN_ENV}, else generated).",
        )
        one.add_argument("--scenario", help="Scenario file, or the name of one in simulator/scenarios/.")
        one.add_argument("--seed", type=int, default=0)
        one.add_argument("--rate", type=float, default=2.0, help="Mutations per second outside scenario phases.")
        one.add_argument(
            "--profile",
            default="beastflow",
            choices=sorted(PROFILES),
            help="Which upstream to be: beastflow (our own protocol, default), github, stripe, shopify.",
        )
        one.add_argument("--owner", help="github: the repository's owner (default octo-org).")
        one.add_argument("--repo", help="github: the repository's name (default hello-world).")
        one.add_argument("--shop", help="shopify: the store's name (default demo-shop).")
        one.add_argument("--rate-limit", type=int, help="github, shopify: requests per rate-limit window.")
        one.add_argument("--rate-window", type=float, help="github, shopify: the rate-limit window in seconds.")
        one.add_argument("--ping-every", type=float, help="github: send a ping webhook this often (default: once).")
        many = parser.add_argument_group("demo (--demo)")
        many.add_argument(
            "--base-port", type=int, default=None, help="First of the demo's consecutive ports (default 9101)."
        )
        many.add_argument("--web-url", default=None, help="Where BeastFlow answers (default its BEASTFLOW_PORT).")

    def handle(self, *args: Any, **options: Any) -> None:
        # httpx logs every push at INFO (several lines a second); the pusher
        # logs the first failure of a run of failures and the recovery itself.
        for name in ("httpx", "httpcore"):
            logging.getLogger(name).setLevel(logging.WARNING)
        if options["demo"]:
            self._demo(options)
        else:
            self._one(options)

    # -- one simulator ---------------------------------------------------------

    def _one(self, options: dict[str, Any]) -> None:
        port: int = options["port"]
        scenario = _scenario_path(options["scenario"]) if options["scenario"] else None
        try:
            runner.run(
                port=port,
                ingest_url=options["ingest_url"],
                webhook_secret=options["secret"],
                token=options["token"],
                scenario=scenario,
                seed=options["seed"],
                mutations_per_s=options["rate"],
                profile=options["profile"],
                profile_options=_profile_options(options),
                control_token=options["control_token"],
            )
        except ValueError as exc:  # an option the profile does not take
            raise CommandError(str(exc)) from exc
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                raise CommandError(f"port {port} is in use: stop what holds it or pick another --port")
            raise

    # -- the demo --------------------------------------------------------------

    def _demo(self, options: dict[str, Any]) -> None:
        base_port: int = options["base_port"] or demo.default_base_port()
        web_url: str = options["web_url"] or f"http://127.0.0.1:{settings.BEASTFLOW_PORT}"
        upstreams = _prepare_demo(base_port)
        control_token = options["control_token"] or secrets.token_urlsafe(24)
        token_file = _write_control_token(control_token)
        log.info("simulator_control_token", file=str(token_file), header="Authorization: Bearer <its content>")
        # The simulators read nothing more from the database: do not hold an
        # idle connection for as long as the demo runs.
        connections.close_all()
        # The simulator's own phase lines would repeat ours (which name the source).
        logging.getLogger("simulator.state").setLevel(logging.WARNING)
        stopping = threading.Event()
        previous = _stop_on_signals(stopping)
        handles: dict[str, runner.SimulatorHandle] = {}
        try:
            for upstream in upstreams:
                handles[upstream.name] = _start(upstream, web_url, control_token)
            _watch(handles, stopping)
        finally:
            for name, handle in handles.items():
                handle.stop()
                log.info(
                    "simulator_stopped", source=name, pushes_ok=handle.sim.push.ok, pushes_failed=handle.sim.push.failed
                )
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _prepare_demo(base_port: int) -> list[demo.Upstream]:
    """Check the ports, then ensure the sources and reset their streams, in the demo tenant."""
    tenant = Tenant.objects.filter(slug=demo.DEMO_SLUG).first()
    if tenant is None:
        raise CommandError(f"no {demo.DEMO_SLUG!r} tenant: run `manage.py bootstrap` first")
    ports = demo.demo_ports(base_port)
    busy = demo.ports_in_use(ports)
    # Before anything is written: a second demo must not reset the streams
    # of the one already running.
    if busy:
        raise CommandError(
            f"port {busy[0]} is in use (the demo needs {ports[0]}-{ports[-1]}): "
            "is another demo running? Stop it, or pass --base-port / set BEASTFLOW_DEMO_BASE_PORT"
        )
    with tenant_context(tenant):
        upstreams = demo.ensure_demo_sources(base_port=base_port)
        demo.reset_demo_streams(source_ids=[u.source_id for u in upstreams])
    return upstreams


def _write_control_token(token: str) -> Path:
    path = Path(settings.STATE_DIR) / "simulator-control-token"
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(token + "\n")
    os.chmod(path, 0o600)  # an older file may have been created wider
    return path


def _start(upstream: demo.Upstream, web_url: str, control_token: str) -> runner.SimulatorHandle:
    try:
        return demo.start_simulator(upstream, web_url=web_url, control_token=control_token)
    except OSError as exc:  # taken since the check above
        raise CommandError(f"port {upstream.port} is in use: cannot start the simulator of {upstream.name}") from exc


def _watch(handles: dict[str, runner.SimulatorHandle], stopping: threading.Event) -> None:
    """Until a signal: log phase changes; a simulator that died ends the demo."""
    phases = demo.PhaseLog()
    while not stopping.is_set():
        phases.check(handles)
        dead = [name for name, handle in handles.items() if not handle.thread.is_alive()]
        if dead:
            raise CommandError(f"the simulator of {dead[0]} stopped unexpectedly; see the log above")
        stopping.wait(WATCH_S)


def _stop_on_signals(stopping: threading.Event) -> dict[signal.Signals, Any]:
    def on_signal(signum: int, _: FrameType | None) -> None:
        stopping.set()

    return {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}


_PROFILE_FLAGS = {
    "owner": "owner",
    "repo": "repo",
    "shop": "shop",
    "rate_limit": "rate_limit",
    "rate_window": "rate_window_s",
    "ping_every": "ping_every_s",
}


def _profile_options(options: dict[str, Any]) -> dict[str, Any]:
    """The profile's options among the command's (those given); a profile refuses what it does not take."""
    return {name: options[flag] for flag, name in _PROFILE_FLAGS.items() if options.get(flag) is not None}


def _scenario_path(value: str) -> Path:
    """A file path, or a bare name of a bundled scenario; validated now for a one-line error."""
    path = Path(value)
    if not path.exists() and path.suffix == "" and path.parent == Path():
        path = SCENARIOS_DIR / f"{value}.yaml"
    if not path.exists():
        raise CommandError(f"no scenario {value!r} (bundled: {', '.join(_bundled())})")
    try:
        load_scenario(path)
    except ScenarioError as exc:
        raise CommandError(f"scenario {path}: {exc}")
    return path


def _bundled() -> list[str]:
    return sorted(p.stem for p in SCENARIOS_DIR.glob("*.yaml"))
