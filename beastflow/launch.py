"""The Makefile's entry point: `python -m beastflow.launch VERB [-- ARGS]`.

Every verb first resolves PostgreSQL and Redis (beastflow.devservices:
environment, else the local default ports, else embedded servers under
.beastflow/) and exports DATABASE_URL and REDIS_URL to what it runs.

  up        bootstrap, then web + two workers (the monitor and the clock's rounds;
            polls, reconciliations, healing and callbacks at niceness
            BEASTFLOW_BATCH_NICE, 10) + beat in the foreground until Ctrl-C,
            and the demo's simulated upstreams once the web answers
            (`manage.py simulate --demo`; BEASTFLOW_DEMO=0 leaves them out);
            a process that dies is restarted (beastflow/supervision.py)
  test      pytest ARGS
  bench     every bench/*.py in name order (but faults, soak and web_memory)
  faults    bench/faults.py ARGS: kill, flush and restart parts under steady ingest
  soak      bench/soak.py ARGS: a fixed rate for minutes, RSS growth per process
  services  print `export ...` lines for a shell
  stop      stop the embedded servers
  migrate   manage.py migrate_tenants ARGS (public and the tenants with
            pending migrations, in parallel; `--all` for every tenant)
  web | worker | beat   one process of `up`, in the foreground
  run       any command: `run -- CMD ARGS`
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, NoReturn

from beastflow import devservices
from beastflow.devservices import log
from beastflow.supervision import RestartPolicy, on_death

ROOT = Path(__file__).resolve().parent.parent
STOP_TIMEOUT_S = float(os.environ.get("BEASTFLOW_STOP_TIMEOUT", "15"))
HEALTH_TIMEOUT_S = 120.0


def state_dir() -> Path:
    # Same default as settings.STATE_DIR, so Django finds the same files.
    return Path(os.environ.get("BEASTFLOW_STATE_DIR", str(ROOT / ".beastflow")))


def port() -> int:
    return int(os.environ.get("BEASTFLOW_PORT", "8000"))


def service_env() -> dict[str, str]:
    """os.environ plus the resolved DATABASE_URL and REDIS_URL, database created."""
    resolved = devservices.resolve(state_dir())
    devservices.ensure_database(resolved["DATABASE_URL"])
    # Unbuffered children: their lines reach the terminal as they are written.
    return {**os.environ, **resolved, "PYTHONUNBUFFERED": "1"}


def metrics_env(env: dict[str, str], *, wipe: bool) -> dict[str, str]:
    """`env` with PROMETHEUS_MULTIPROC_DIR: web, workers and beat write their metrics there, /metrics sums them.

    Default .beastflow/metrics, or the variable as given. `wipe` (for `up`)
    removes what earlier runs left: their processes are gone, and stale
    files would be counted in forever (docs/observability.md).
    """
    folder = Path(env.get("PROMETHEUS_MULTIPROC_DIR") or state_dir() / "metrics")
    if wipe and folder.is_dir():
        for stale in folder.glob("*.db"):
            stale.unlink(missing_ok=True)
    folder.mkdir(parents=True, exist_ok=True)
    return {**env, "PROMETHEUS_MULTIPROC_DIR": str(folder)}


# What `up` splits between its two workers. Judging on time (the monitor) and
# handing work out (the clock's rounds, on `celery`) must not wait behind the
# work handed out: on 2 cores at 1,000 tenants, polls, healing passes and
# callbacks running beside the monitor at the same priority kept it 13 / 26 s
# behind its deadlines (p50 / p99); with them at a lower priority, 0.5 / 6.9 s
# in the same shape (docs/scheduling.md, "Within the target on 2 cores").
LATENCY_QUEUES = ("celery", "monitor")
BATCH_QUEUES = ("polls", "reconcile", "healing", "callbacks")


def worker_command(queues: str = "", *, node: str = "") -> list[str]:
    """One Celery worker: of `queues` (comma-separated), else of BEASTFLOW_WORKER_QUEUES, else of every queue.

    Every queue (settings.CELERY_TASK_QUEUES) with two pool processes is what
    `make worker` runs; in production run one worker per queue instead
    (docs/scheduling.md): BEASTFLOW_WORKER_QUEUES=monitor and BEASTFLOW_WORKER_CONCURRENCY=N.
    `node`: the worker's node name (default: named after its queues).
    """
    argv = [sys.executable, "-m", "celery", "-A", "beastflow", "worker", "-l", "INFO"]
    argv += ["--concurrency", os.environ.get("BEASTFLOW_WORKER_CONCURRENCY", "2")]
    queues = queues or os.environ.get("BEASTFLOW_WORKER_QUEUES", "").strip()
    if queues:
        argv += ["-Q", queues, "-n", f"{node or queues.replace(',', '-')}@%h"]
    return argv


def batch_niceness() -> int:
    """BEASTFLOW_BATCH_NICE (default 10, 0 for none): the batch worker's CPU niceness in `up`."""
    raw = os.environ.get("BEASTFLOW_BATCH_NICE", "10").strip() or "0"
    try:
        return max(0, min(19, int(raw)))
    except ValueError:
        raise SystemExit(f"BEASTFLOW_BATCH_NICE must be a number from 0 to 19, not {raw!r}") from None


def up_workers() -> dict[str, list[str]]:
    """`up`'s workers: one for the latency queues, one at a lower priority for the batch queues.

    A niceness only lowers a priority (no privilege needed) and the batch
    worker still takes every cycle the others leave. BEASTFLOW_WORKER_QUEUES
    set: one worker of those queues, as `make worker` runs.
    """
    if os.environ.get("BEASTFLOW_WORKER_QUEUES", "").strip():
        return {"worker": worker_command()}
    batch = worker_command(",".join(BATCH_QUEUES), node="batch")
    niceness = batch_niceness()
    if niceness and shutil.which("nice"):
        batch = ["nice", "-n", str(niceness), *batch]
    # Celery's default node name for the worker the probes ping (beastflow.probes worker: celery@<host>).
    return {"worker": worker_command(",".join(LATENCY_QUEUES), node="celery"), "batch": batch}


# The long-running processes of `up` (`split`: its two workers), also runnable one at a time.
def process_commands(*, split: bool = False) -> dict[str, list[str]]:
    python = sys.executable
    workers = up_workers() if split else {"worker": worker_command()}
    return {
        "web": [
            python, "-m", "uvicorn", "beastflow.asgi:application",
            "--host", "127.0.0.1", "--port", str(port()), "--no-access-log",
        ],
        **workers,
        # Beat holds a leader lock (scheduling/beat.py): a second one, here or elsewhere, waits.
        "beat": [python, "-m", "celery", "-A", "beastflow", "beat", "-l", "INFO"],
    }  # fmt: skip


def demo_enabled() -> bool:
    return os.environ.get("BEASTFLOW_DEMO", "1").strip().lower() not in ("0", "false", "no", "off")


# Started by `up` once the web answers: they push to it. Optional: `up`
# keeps serving when one of them exits (the demo is a showcase, not the service).
def after_web_commands() -> dict[str, list[str]]:
    if not demo_enabled():
        return {}
    return {"demo": manage("simulate", "--demo", "--web-url", f"http://127.0.0.1:{port()}")}


def manage(*args: str) -> list[str]:
    return [sys.executable, str(ROOT / "manage.py"), *args]


# Verbs -------------------------------------------------------------------


def cmd_services(_: list[str]) -> int:
    # The database too: the exported URLs must work as they are printed.
    env = service_env()
    for name in ("DATABASE_URL", "REDIS_URL"):
        print(f"export {name}={shlex.quote(env[name])}")
    return 0


def cmd_stop(_: list[str]) -> int:
    if not devservices.stop(state_dir()):
        log("no embedded server was running")
    return 0


def cmd_test(args: list[str]) -> int:
    env = service_env()
    # Importing beastflow (for the celery app) defaults DJANGO_SETTINGS_MODULE
    # to the service settings, and pytest-django prefers the environment over
    # pyproject's tests.settings: without this the suite would run against the
    # service database and Redis prefix.
    if env.get("DJANGO_SETTINGS_MODULE") == "beastflow.settings":
        env["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    _exec([sys.executable, "-m", "pytest", *args], env)


def cmd_run(args: list[str]) -> int:
    if not args:
        log("usage: python -m beastflow.launch run -- CMD [ARGS]")
        return 2
    _exec(args, service_env())


def local_upstreams_env(env: dict[str, str]) -> dict[str, str]:
    """`up` and `bench` call simulators on 127.0.0.1: allow loopback past the outbound URL guard, and say so.

    Production keeps the default (refuse loopback and private ranges; see docs/security.md).
    """
    allow = env.get("BEASTFLOW_UPSTREAM_ALLOW") or "127.0.0.0/8,::1/128"
    log(f"outbound URL guard: BEASTFLOW_UPSTREAM_ALLOW={allow} (loopback allowed for the local simulators)")
    return {**env, "BEASTFLOW_UPSTREAM_ALLOW": allow}


def cmd_migrate(args: list[str]) -> int:
    _exec(manage("migrate_tenants", *args), service_env())


# Benchmarks run on their own, not in `bench`: they run for many minutes (and kill things).
# faults and soak have a verb; web_memory runs by path (docs/scheduling.md).
OWN_VERB_BENCHES = ("faults.py", "soak.py", "web_memory.py")


def cmd_bench(args: list[str]) -> int:
    # Files starting with "_" are helpers imported by the benchmarks.
    scripts = sorted(
        p for p in (ROOT / "bench").glob("*.py") if not p.name.startswith("_") and p.name not in OWN_VERB_BENCHES
    )
    if not scripts:
        log("no benchmarks: bench/*.py is empty")
        return 0
    env = local_upstreams_env(service_env())
    failed = []
    for script in scripts:
        print(f"== {script.relative_to(ROOT)}", flush=True)
        if subprocess.run([sys.executable, str(script), *args], cwd=ROOT, env=env, check=False).returncode != 0:  # noqa: S603 (our own scripts)
            failed.append(script.name)
    if failed:
        log(f"failed: {', '.join(failed)}")
        return 1
    return 0


def _own_bench(script: str) -> Callable[[list[str]], int]:
    def run(args: list[str]) -> int:
        # Not service_env(): these scripts start their own PostgreSQL and Redis when
        # they must restart them (faults), or resolve them like every verb (soak).
        _exec([sys.executable, str(ROOT / "bench" / script), *args], {**os.environ, "PYTHONUNBUFFERED": "1"})

    return run


def cmd_up(_: list[str]) -> int:
    env = local_upstreams_env(service_env())
    if not _port_free(port()):
        log(f"port {port()} is in use: stop what holds it or set BEASTFLOW_PORT")
        return 1
    # bootstrap migrates, ensures the demo tenant and the admin login, and
    # prints them; nothing starts serving on a half-migrated database.
    bootstrap = manage("bootstrap") if demo_enabled() else manage("bootstrap", "--no-demo-sources")
    if subprocess.run(bootstrap, cwd=ROOT, env=env, check=False).returncode != 0:  # noqa: S603 (fixed argv)
        log("bootstrap failed, not starting")
        return 1
    return Supervisor(process_commands(split=True), metrics_env(env, wipe=True), after_web=after_web_commands()).run()


def _single(name: str) -> Callable[[list[str]], int]:
    def run(args: list[str]) -> int:
        _exec([*process_commands()[name], *args], metrics_env(service_env(), wipe=False))

    return run


VERBS: dict[str, Callable[[list[str]], int]] = {
    "up": cmd_up,
    "test": cmd_test,
    "bench": cmd_bench,
    "faults": _own_bench("faults.py"),
    "soak": _own_bench("soak.py"),
    "services": cmd_services,
    "stop": cmd_stop,
    "migrate": cmd_migrate,
    "web": _single("web"),
    "worker": _single("worker"),
    "beat": _single("beat"),
    "run": cmd_run,
}


# Supervising the processes of `up` ---------------------------------------


@dataclass
class Child:
    name: str
    argv: list[str]
    proc: subprocess.Popen[bytes]
    optional: bool = False  # the demo's: giving up on it leaves the others running
    reader: threading.Thread = field(init=False)
    restarts: int = 0
    crashes: tuple[float, ...] = ()  # monotonic times of its recent deaths (supervision.on_death)
    restart_at: float | None = None  # dead, to be started again at this monotonic time
    abandoned: bool = False  # dead for good (an optional child past the restart limit)


class RestartCounter:
    """beastflow_process_restarts_total{process}, visible on the web's /metrics.

    The launcher is no Django process and serves nothing. It writes its
    counter where web, workers and beat write theirs: a file of its own
    (counter_<launcher pid>.db) in PROMETHEUS_MULTIPROC_DIR, through
    prometheus_client's multiprocess value class, and the web's /metrics sums
    every file of the folder (docs/observability.md). Each process's series
    exists at 0 from the start. Without the folder, nothing is counted.
    """

    def __init__(self, folder: str | None, processes: list[str]) -> None:
        self._counter = None
        if not folder:
            return
        # The value class reads the folder from the environment when it opens its file.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
        from prometheus_client import CollectorRegistry, Counter, values

        if not values.ValueClass._multiprocess:  # imported before the folder was set
            values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]
        self._counter = Counter(
            "beastflow_process_restarts",
            "Processes of `make up` restarted by the launcher after they died",
            ["process"],
            registry=CollectorRegistry(),
        )
        for name in processes:
            self._counter.labels(process=name)

    def inc(self, process: str) -> None:
        if self._counter is not None:
            self._counter.labels(process=process).inc()


class Supervisor:
    """Runs the children in the foreground until a signal, restarting the ones that die.

    Steps:
    1. start every child in its own process group, so the terminal's Ctrl-C
       reaches only us and each child is stopped once, in order;
    2. copy each child's output to ours, every line prefixed with its name;
    3. poll /healthz until the web process answers, then start the
       `after_web` children (optional ones) and print the URLs;
    4. when a child exits on its own, kill what is left of its process group
       (a Celery pool process outliving its parent), log a `process_died`
       line and start it again after the delay beastflow/supervision.py
       decides, counting the restart in beastflow_process_restarts_total;
       when the policy gives up on a child (too many deaths in its window),
       stop all and exit 1 (an optional child is only left dead);
    5. on SIGINT/SIGTERM stop all children (the optional ones first, then
       the others, the last started first) and exit 0.
    """

    def __init__(
        self,
        commands: dict[str, list[str]],
        env: dict[str, str],
        *,
        after_web: dict[str, list[str]] | None = None,
        policy: RestartPolicy | None = None,
    ) -> None:
        self.commands = commands
        self.after_web = after_web or {}
        self.env = env
        self.policy = policy or RestartPolicy.from_env(env)
        self.children: list[Child] = []
        self.signalled = threading.Event()
        self.out_lock = threading.Lock()
        self.width = max(len(name) for name in [*commands, *self.after_web])
        self.restarts = RestartCounter(env.get("PROMETHEUS_MULTIPROC_DIR"), [*commands, *self.after_web])

    def run(self) -> int:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._on_signal)
        for name, argv in self.commands.items():
            self._start(name, argv)
        given_up = self._watch()
        if given_up is not None:
            self._say(
                f"{given_up.name} died {len(given_up.crashes)} times within {self.policy.window_s:.0f} s "
                f"(BEASTFLOW_RESTART_MAX={self.policy.max_crashes}); stopping the others"
            )
        self._stop_all()
        log("stopped (embedded PostgreSQL/Redis, if any, keep running: `make clean` stops them)")
        return 0 if given_up is None else 1

    def _on_signal(self, signum: int, _: FrameType | None) -> None:
        if self.signalled.is_set():
            # Second Ctrl-C: the user does not want to wait for a graceful stop.
            self._kill_all()
        self.signalled.set()

    def _popen(self, argv: list[str]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(  # noqa: S603 (fixed argv)
            argv,
            cwd=ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            process_group=0,
        )

    def _start(self, name: str, argv: list[str], *, optional: bool = False) -> None:
        child = Child(name, argv, self._popen(argv), optional=optional)
        self._read(child)
        self.children.append(child)

    def _read(self, child: Child) -> None:
        child.reader = threading.Thread(target=self._copy_output, args=(child, child.proc), daemon=True)
        child.reader.start()

    def _copy_output(self, child: Child, proc: subprocess.Popen[bytes]) -> None:
        prefix = f"{child.name:<{self.width}} | ".encode()
        stream: IO[bytes] | None = proc.stdout
        assert stream is not None
        out = sys.stdout.buffer
        for line in iter(stream.readline, b""):
            with self.out_lock:
                out.write(prefix + line if line.endswith(b"\n") else prefix + line + b"\n")
                out.flush()

    def _watch(self) -> Child | None:
        """Wait for a signal (None) or for a child the policy gives up on (that child)."""
        started = time.monotonic()
        announced = False
        while not self.signalled.is_set():
            for child in self.children:
                if child.abandoned:
                    continue
                if child.restart_at is not None:
                    if time.monotonic() >= child.restart_at:
                        self._restart(child)
                    continue
                if child.proc.poll() is None:
                    continue
                if self._on_death(child):
                    return child
            if not announced:
                announced = self._announce_when_healthy(started)
            self.signalled.wait(0.1)
        return None

    def _on_death(self, child: Child) -> bool:
        """Schedule the dead child's restart; True when the policy gives up on it (and it is not optional)."""
        code = child.proc.returncode
        # What its group still holds (pool processes, a uvicorn worker) must not outlive it:
        # they would keep the port, the broker connection or a task.
        _signal_child(child, signal.SIGKILL, group=True)
        child.reader.join(timeout=2)
        now = time.monotonic()
        decision = on_death(child.crashes, now=now, policy=self.policy)
        child.crashes = decision.crashes
        if decision.give_up:
            self._say(
                f"event=process_gave_up process={child.name} exit_code={code} restarts={child.restarts} "
                f"deaths_in_window={len(decision.crashes)} window_s={self.policy.window_s:g}"
            )
            child.abandoned = True
            return not child.optional
        child.restart_at = now + decision.delay_s
        self._say(
            f"event=process_died process={child.name} exit_code={code} restarts={child.restarts} "
            f"deaths_in_window={len(decision.crashes)} next_delay_s={decision.delay_s:g}"
        )
        return False

    def _restart(self, child: Child) -> None:
        child.restart_at = None
        child.proc = self._popen(child.argv)
        child.restarts += 1
        self.restarts.inc(child.name)
        self._read(child)
        self._say(f"event=process_restarted process={child.name} pid={child.proc.pid} restarts={child.restarts}")

    def _announce_when_healthy(self, started: float) -> bool:
        """True once the URLs are printed (or the wait has been given up)."""
        if _healthy(port()):
            for name, argv in self.after_web.items():
                self._start(name, argv, optional=True)
            base = os.environ.get("BEASTFLOW_BASE_DOMAIN", "localhost")
            self._say(
                f"BeastFlow is up: console http://demo.{base}:{port()}/  api http://127.0.0.1:{port()}/  (Ctrl-C stops)"
            )
            return True
        if time.monotonic() - started > HEALTH_TIMEOUT_S:
            self._say(f"web does not answer GET /healthz after {HEALTH_TIMEOUT_S:.0f} s: see its output above")
            return True
        return False

    def _say(self, message: str) -> None:
        with self.out_lock:
            log(message)

    def _stop_all(self) -> None:
        deadline = time.monotonic() + STOP_TIMEOUT_S
        # The optional children (the demo's simulators) first and to the end,
        # so that nothing pushes to a web that is shutting down; then beat
        # first, so nothing new is enqueued while the worker drains.
        self._terminate([c for c in self.children if c.optional], deadline)
        self._terminate([c for c in reversed(self.children) if not c.optional], deadline)
        self._kill_all()
        for child in self.children:
            child.proc.wait()
            child.reader.join(timeout=2)

    def _terminate(self, children: list[Child], deadline: float) -> None:
        """SIGTERM each (in order), then wait for all until `deadline`."""
        for child in children:
            if child.proc.poll() is None:
                _signal_child(child, signal.SIGTERM, group=False)
        for child in children:
            try:
                child.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log(f"{child.name} still running after {STOP_TIMEOUT_S:.0f} s; killing it")

    def _kill_all(self) -> None:
        # The whole group: a Celery pool process or uvicorn worker outliving
        # its parent would hold the port or the broker connection.
        for child in self.children:
            _signal_child(child, signal.SIGKILL, group=True)


def _signal_child(child: Child, sig: signal.Signals, *, group: bool) -> None:
    try:
        if group:
            os.killpg(child.proc.pid, sig)
        else:
            child.proc.send_signal(sig)
    except ProcessLookupError:
        pass  # already gone


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
            return int(response.status) == 200
    except (urllib.error.URLError, OSError):
        return False


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Like uvicorn: a port in TIME_WAIT after our last run is free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _exec(argv: list[str], env: dict[str, str]) -> NoReturn:
    sys.stdout.flush()
    sys.stderr.flush()
    os.chdir(ROOT)
    os.execvpe(argv[0], argv, env)  # noqa: S606 (replaces this process on purpose)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in VERBS:
        print(__doc__, file=sys.stderr)
        return 2
    verb, rest = argv[0], argv[1:]
    if rest[:1] == ["--"]:
        rest = rest[1:]
    try:
        return VERBS[verb](rest)
    except KeyboardInterrupt:  # Ctrl-C before the supervisor took over signals
        return 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
