"""A push while the service's database is unreachable: 503 with Retry-After, waited out, committed once.

The web server of this test reaches PostgreSQL through a TCP relay the test
can cut: the outage is real (connections dropped, new ones refused), the
service and the SDK are as shipped.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest
from beastflow_sdk import RetryInfo, upsert

from tests.conftest import subprocess_env, web_server
from tests.sdk.conftest import SdkTenant, source_body

pytestmark = pytest.mark.e2e


class Relay:
    """127.0.0.1:<port> -> the database; `cut()` drops every connection and refuses new ones until `restore()`."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.up = True
        self.sockets: list[socket.socket] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            if not self.up:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.up = False
        with self.lock:
            for end in self.sockets:
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)
            self.sockets.clear()

    def restore(self) -> None:
        self.up = True

    def close(self) -> None:
        self.cut()
        self.listener.close()


@pytest.fixture
def relayed_server() -> Iterator[tuple[str, Relay]]:
    database = urlsplit(subprocess_env()["DATABASE_URL"])
    relay = Relay((database.hostname or "127.0.0.1", database.port or 5432))
    netloc = database.netloc.rsplit(":", 1)[0] if database.port else database.netloc
    through = urlunsplit(database._replace(netloc=f"{netloc}:{relay.port}"))
    try:
        with web_server(env={"DATABASE_URL": through}) as url:
            yield url, relay
    finally:
        relay.close()


def test_a_push_during_a_database_outage_waits_for_retry_after_and_commits_once(
    sdk_tenant: SdkTenant, relayed_server: tuple[str, Relay]
) -> None:
    url, relay = relayed_server
    retries: list[RetryInfo] = []
    with sdk_tenant.client() as direct:
        source_id = direct.sources.create(source_body())["id"]
    with SdkTenant(sdk_tenant.tenant, sdk_tenant.api_key, url).client(on_retry=retries.append) as bf:
        assert bf.push(source_id, upsert("before", 1, {}))["accepted"] == 1  # key and source known to the server
        # when: the database goes away, and comes back two seconds later
        relay.cut()
        threading.Timer(2.0, relay.restore).start()
        started = time.monotonic()
        result = bf.push(source_id, upsert("during", 1, {"total": 1}))
        waited = time.monotonic() - started
    # then: told 503 with a Retry-After, waited, committed once
    assert result == {"accepted": 1, "duplicates": 0}
    assert retries and retries[0].status == 503 and retries[0].delay_s >= 1, retries
    assert waited >= retries[0].delay_s
    with sdk_tenant.client() as direct:
        assert [c["key"] for c in direct.changes.iter(source=source_id)] == ["before", "during"]
