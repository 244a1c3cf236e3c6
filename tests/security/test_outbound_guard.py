"""The outbound URL guard at work: configuration refused (422), requests refused (upstream_forbidden),
connections made to the address that was checked."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from beastflow import netguard
from callbacks.policy import DeliveryPolicy
from callbacks.transport import post_changes
from engines.connectors.http import ErrorKind, UpstreamError, http_get
from tests.conftest import Persona
from tests.factories import source_spec


class _Server:
    """A plain HTTP server on 127.0.0.1 that records the Host header of each request."""

    def __init__(self) -> None:
        hosts: list[str] = []
        self.hosts = hosts

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                hosts.append(self.headers.get("Host", ""))
                body = b'{"secret": "internal"}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                self.do_GET()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def internal() -> Iterator[_Server]:
    server = _Server()
    yield server
    server.close()


@pytest.fixture
def nothing_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BEASTFLOW_UPSTREAM_ALLOW", "")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:5432/",
        "http://2130706433:6379/",
        "http://[::1]:8000/admin/",
        "http://169.254.169.254/latest/meta-data/",
        "http://0x7f.1/",
    ],
)
def test_a_source_pointing_at_an_internal_address_is_refused_on_create(
    alice: Persona, nothing_allowed: None, url: str
) -> None:
    response = alice.client().post("/api/v1/sources", source_spec(config={"poll_url": url}), format="json")
    assert response.status_code == 422, response.json()
    assert [error["field"] for error in response.json()["errors"]] == ["config.poll_url"]


def test_snapshot_url_rest_base_url_and_patch_are_checked_too(alice: Persona, nothing_allowed: None) -> None:
    client = alice.client()
    spec = source_spec(config={"poll_url": "https://feed.example.com/c", "snapshot_url": "http://10.0.0.7/s"})
    response = client.post("/api/v1/sources", spec, format="json")
    assert response.status_code == 422
    assert {e["field"] for e in response.json()["errors"]} == {"config.snapshot_url"}
    rest = {
        "name": "rest",
        "connector": "rest",
        "config": {"base_url": "http://192.168.0.1/", "list_path": "/items", "key": "id", "version": "v"},
    }
    response = client.post("/api/v1/sources", rest, format="json")
    assert response.status_code == 422
    assert {e["field"] for e in response.json()["errors"]} == {"config.base_url"}
    created = client.post(
        "/api/v1/sources", source_spec(config={"poll_url": "https://feed.example.com/c"}), format="json"
    )
    assert created.status_code == 201, created.json()
    patched = client.patch(
        f"/api/v1/sources/{created.json()['id']}", {"config": {"poll_url": "http://100.64.1.1/"}}, format="json"
    )
    assert patched.status_code == 422


def test_host_and_hop_by_hop_headers_are_refused(alice: Persona) -> None:
    for name in ("Host", "Transfer-Encoding", "Connection"):
        spec = source_spec(config={"poll_url": "http://127.0.0.1:9001/changes", "headers": {name: "x"}})
        response = alice.client().post("/api/v1/sources", spec, format="json")
        assert response.status_code == 422, name
        assert response.json()["errors"][0]["field"] == "config.headers"


def test_a_subscription_to_an_internal_address_is_refused(alice: Persona, nothing_allowed: None) -> None:
    for url in ("http://127.0.0.1:9/_control/mutate", "http://2130706433/", "http://[fe80::1]/"):
        response = alice.client().post("/api/v1/subscriptions", {"url": url}, format="json")
        assert response.status_code == 422, url
        assert response.json()["errors"][0]["field"] == "url"


def test_a_request_to_a_forbidden_address_never_leaves(internal: _Server, nothing_allowed: None) -> None:
    for host in ("127.0.0.1", "localhost", "2130706433"):
        with pytest.raises(UpstreamError) as caught:
            http_get(f"http://{host}:{internal.port}/changes", None, headers={}, timeout_s=2)
        assert caught.value.kind is ErrorKind.UPSTREAM_FORBIDDEN
        assert "internal" not in caught.value.detail  # nothing of the answer shows
    assert internal.hosts == []


def test_a_name_resolving_inside_is_refused_at_request_time(internal: _Server, nothing_allowed: None) -> None:
    # The machine's own name resolves to a loopback or private address (/etc/hosts).
    name = socket.gethostname()
    try:
        socket.getaddrinfo(name, internal.port)
    except socket.gaierror:
        pytest.skip(f"this machine's name {name!r} does not resolve")
    with pytest.raises(UpstreamError) as caught:
        http_get(f"http://{name}:{internal.port}/changes", None, headers={}, timeout_s=2)
    assert caught.value.kind is ErrorKind.UPSTREAM_FORBIDDEN
    assert internal.hosts == []


def test_callbacks_to_a_forbidden_address_are_not_posted(internal: _Server, nothing_allowed: None) -> None:
    outcome = post_changes(
        url=f"http://127.0.0.1:{internal.port}/hook",
        body=b"{}",
        secret="s",
        subscription_id=1,
        timestamp=1,
        policy=DeliveryPolicy(),
    )
    assert not outcome.ok and outcome.http_status is None
    assert outcome.error.startswith("forbidden:")
    assert internal.hosts == []


def test_the_connection_goes_to_the_address_that_was_checked(
    internal: _Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rebinding name answers public first, loopback next: the guard resolves once and connects there."""
    monkeypatch.setenv("BEASTFLOW_UPSTREAM_ALLOW", "127.0.0.0/8")
    answers = iter(["127.0.0.1", "169.254.169.254"])
    calls: list[str] = []
    real = socket.getaddrinfo

    def resolver(host: str, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != "rebind.test":
            return real(host, port, *args, **kwargs)
        calls.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), port))]

    monkeypatch.setattr(netguard.socket, "getaddrinfo", resolver)
    with netguard.guarded_client() as client:
        response = client.get(f"http://rebind.test:{internal.port}/x")
    assert response.status_code == 200
    assert calls == ["rebind.test"]  # resolved once, for the connection
    assert internal.hosts == [f"rebind.test:{internal.port}"]  # the name kept as Host
    # The next connection resolves again and is refused: the metadata address never gets a socket.
    with netguard.guarded_client() as client, pytest.raises(netguard.ForbiddenAddressError):
        client.get(f"http://rebind.test:{internal.port}/x")


def test_the_allow_list_lets_an_operator_reach_an_internal_upstream(
    internal: _Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BEASTFLOW_UPSTREAM_ALLOW", f"127.0.0.0/8:{internal.port}")
    assert http_get(f"http://127.0.0.1:{internal.port}/c", None, headers={}, timeout_s=2).status_code == 200
    other_port = internal.port + 1 if internal.port < 65535 else 1
    # another port of the same host stays closed
    with pytest.raises(httpx.ConnectError), netguard.guarded_client() as client:
        client.get(f"http://127.0.0.1:{other_port}/")
