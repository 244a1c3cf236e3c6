"""Runs a simulated upstream: HTTP server, traffic clock and pusher in one event loop.

`run()` blocks until SIGINT/SIGTERM (the `manage.py simulate` entry point);
`start_in_thread()` runs the same thing in a daemon thread for tests and
returns a handle with the base URL, the live Simulator and `stop()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import signal
import socket
import threading
import time
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import uvicorn

from simulator.dataset import Dataset
from simulator.faults import FaultState
from simulator.pusher import Pusher
from simulator.scenario import Scenario, load_scenario
from simulator.server import SimulatorApp
from simulator.state import Simulator, Traffic

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"  # the simulator never listens beyond loopback
TICK_S = 0.02  # traffic and scenario resolution


class _Server(uvicorn.Server):
    """uvicorn without its signal handling: the runner owns shutdown.

    uvicorn re-raises a captured SIGTERM after serving, which would kill the
    process before our tasks are cancelled and the pusher's client closed.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


@dataclass
class _Options:
    ingest_url: str | None
    webhook_secret: str | None
    scenario: Scenario | None
    heartbeat_s: float
    initial_records: int
    control_token: str


@dataclass
class SimulatorHandle:
    """A simulator running in a background thread."""

    sim: Simulator
    port: int
    thread: threading.Thread
    control_token: str = ""
    _loop: asyncio.AbstractEventLoop | None = None
    _stop: asyncio.Event | None = None
    _ready: threading.Event = field(default_factory=threading.Event)
    _error: BaseException | None = None

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def control_headers(self) -> dict[str, str]:
        """What a call to the control API sends (server.py: a bearer token)."""
        return {"Authorization": f"Bearer {self.control_token}"}

    @property
    def dataset(self) -> Dataset:
        return self.sim.dataset

    @property
    def faults(self) -> FaultState:
        return self.sim.faults

    def stop(self, timeout: float = 5.0) -> None:
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # loop closed in between
                loop.call_soon_threadsafe(stop.set)
        self.thread.join(timeout)

    def __enter__(self) -> SimulatorHandle:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def build_simulator(
    *,
    seed: int = 0,
    token: str | None = None,
    mutations_per_s: float = 2.0,
    key_space: int = 1000,
    run_id: str | None = None,
    profile: str = "beastflow",
    profile_options: Mapping[str, Any] | None = None,
) -> Simulator:
    """A simulator; `profile` picks the upstream it pretends to be (simulator/profiles).

    Raises ValueError for an unknown profile or option.
    """
    return Simulator(
        seed=seed,
        token=token,
        key_space=key_space,
        traffic=Traffic(mutations_per_s=mutations_per_s),
        run_id=run_id or secrets.token_hex(3),
        profile=profile,
        profile_options=profile_options,
    )


def _bind(port: int) -> socket.socket:
    # Bound here rather than by uvicorn so that port=0 yields a known free port.
    # proto must be IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on
    # accepted sockets whose proto says TCP, and without it every response
    # waits ~40 ms on the client's delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, port))
    return sock


async def _serve(
    sim: Simulator,
    sock: socket.socket,
    opts: _Options,
    stop: asyncio.Event,
) -> _Server:
    """Serve until `stop` is set (or uvicorn decides to exit)."""
    config = uvicorn.Config(
        SimulatorApp(sim, stopping=stop, control_token=opts.control_token),
        lifespan="off",
        log_config=None,  # logging belongs to the caller (manage.py configures it)
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=2,
    )
    server = _Server(config)
    if opts.initial_records:
        sim.dataset.seed_records(opts.initial_records)
    if opts.scenario is not None:
        sim.start_scenario(opts.scenario)
    tasks = [asyncio.create_task(_clock(sim, stop), name="simulator-clock")]
    if opts.ingest_url:
        pusher = Pusher(
            sim,
            ingest_url=opts.ingest_url,
            webhook_secret=opts.webhook_secret,
            heartbeat_s=opts.heartbeat_s,
        )
        tasks.append(asyncio.create_task(pusher.run(stop), name="simulator-pusher"))
    serving = asyncio.create_task(server.serve(sockets=[sock]), name="simulator-http")
    watcher = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({serving, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.set()  # wakes sleeping requests and the pusher
        server.should_exit = True
        await serving
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, watcher, return_exceptions=True)
    return server


async def _clock(sim: Simulator, stop: asyncio.Event) -> None:
    """Advance the scenario and make the traffic's mutations, every TICK_S."""
    last = time.monotonic()
    while not stop.is_set():
        await asyncio.sleep(TICK_S)
        now = time.monotonic()
        try:
            sim.tick()
            sim.generate(now - last)
        except Exception:  # a bug here must not stop the server; it is logged
            logger.exception("simulator clock step failed")
        last = now


def _options(
    ingest_url: str | None,
    webhook_secret: str | None,
    scenario: str | Path | Scenario | None,
    heartbeat_s: float,
    initial_records: int,
    control_token: str | None,
) -> _Options:
    loaded = load_scenario(scenario) if isinstance(scenario, str | Path) else scenario
    # None: a token of this run's own, so the control API is never open.
    token = control_token or secrets.token_urlsafe(24)
    return _Options(ingest_url, webhook_secret, loaded, heartbeat_s, initial_records, token)


def run(
    *,
    port: int,
    ingest_url: str | None = None,
    webhook_secret: str | None = None,
    token: str | None = None,
    scenario: str | Path | Scenario | None = None,
    seed: int = 0,
    mutations_per_s: float = 2.0,
    heartbeat_s: float = 1.0,
    initial_records: int = 0,
    key_space: int = 1000,
    run_id: str | None = None,
    profile: str = "beastflow",
    profile_options: Mapping[str, Any] | None = None,
    control_token: str | None = None,
) -> None:
    """Serve a simulated upstream on 127.0.0.1:`port` until SIGINT or SIGTERM.

    `control_token` guards the control API; None generates one (and logs it).
    """
    opts = _options(ingest_url, webhook_secret, scenario, heartbeat_s, initial_records, control_token)
    sim = build_simulator(
        seed=seed,
        token=token,
        mutations_per_s=mutations_per_s,
        key_space=key_space,
        run_id=run_id,
        profile=profile,
        profile_options=profile_options,
    )
    sock = _bind(port)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        logger.info("simulator %s serving on http://%s:%d", sim.run_id, HOST, sock.getsockname()[1])
        if control_token is None:  # generated: the only way for the operator to learn it
            logger.warning("simulator %s control API token: %s", sim.run_id, opts.control_token)
        await _serve(sim, sock, opts, stop)

    try:
        asyncio.run(main())
    finally:
        sock.close()


def start_in_thread(
    *,
    port: int = 0,
    ingest_url: str | None = None,
    webhook_secret: str | None = None,
    token: str | None = None,
    scenario: str | Path | Scenario | None = None,
    seed: int = 0,
    mutations_per_s: float = 0.0,
    heartbeat_s: float = 1.0,
    initial_records: int = 0,
    key_space: int = 1000,
    run_id: str | None = None,
    profile: str = "beastflow",
    profile_options: Mapping[str, Any] | None = None,
    ready_timeout_s: float = 5.0,
    control_token: str | None = None,
) -> SimulatorHandle:
    """Start a simulator in a daemon thread; returns once it accepts requests.

    `mutations_per_s` defaults to 0 here so that tests drive changes
    themselves (through `handle.sim.mutate` or the control API, with
    `handle.control_headers`; `control_token` None generates one).
    """
    opts = _options(ingest_url, webhook_secret, scenario, heartbeat_s, initial_records, control_token)
    sim = build_simulator(
        seed=seed,
        token=token,
        mutations_per_s=mutations_per_s,
        key_space=key_space,
        run_id=run_id or "test",
        profile=profile,
        profile_options=profile_options,
    )
    sock = _bind(port)
    handle = SimulatorHandle(
        sim=sim, port=sock.getsockname()[1], thread=threading.Thread(), control_token=opts.control_token
    )

    async def main() -> None:
        handle._loop = asyncio.get_running_loop()
        handle._stop = asyncio.Event()
        serving = asyncio.create_task(_serve(sim, sock, opts, handle._stop))
        await _wait_listening(handle.port, serving)
        handle._ready.set()
        await serving

    def target() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:  # surfaced to the caller below
            handle._error = exc
        finally:
            handle._ready.set()
            sock.close()

    handle.thread = threading.Thread(target=target, name=f"simulator-{handle.port}", daemon=True)
    handle.thread.start()
    if not handle._ready.wait(ready_timeout_s) or handle._error is not None:
        handle.stop()
        raise RuntimeError(f"simulator did not start: {handle._error!r}")
    return handle


async def _wait_listening(port: int, serving: asyncio.Task[_Server]) -> None:
    """Until a TCP connect succeeds (uvicorn has started) or serving failed."""
    for _ in range(200):
        if serving.done():
            serving.result()  # raises the startup error
            raise RuntimeError("simulator stopped during startup")
        try:
            _, writer = await asyncio.open_connection(HOST, port)
        except OSError:
            await asyncio.sleep(0.01)
            continue
        writer.close()
        await writer.wait_closed()
        return
    raise RuntimeError("simulator did not start listening")
