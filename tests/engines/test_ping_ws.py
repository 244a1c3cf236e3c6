"""The websocket path end to end: key -> tenant -> consumer."""

from __future__ import annotations

import pytest
from channels.testing import WebsocketCommunicator

from beastflow.asgi import application
from tests.conftest import Persona

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("close_db_threads")]


async def test_ping_with_the_key_in_the_header_answers_for_the_keys_tenant(alice: Persona) -> None:
    communicator = WebsocketCommunicator(
        application, "/ws/v1/ping", headers=[(b"authorization", f"Bearer {alice.api_key}".encode())]
    )
    connected, _ = await communicator.connect()
    assert connected
    assert (await communicator.receive_json_from())["tenant"] == "acme"
    await communicator.send_json_to({"type": "ping"})
    pong = await communicator.receive_json_from()
    assert pong["type"] == "pong" and pong["tenant"] == "acme"
    await communicator.disconnect()


async def test_ping_with_the_key_in_the_query_string(charlie: Persona) -> None:
    communicator = WebsocketCommunicator(application, f"/ws/v1/ping?token={charlie.api_key}")
    connected, _ = await communicator.connect()
    assert connected
    assert (await communicator.receive_json_from())["tenant"] == "globex"
    await communicator.disconnect()


@pytest.mark.parametrize("path", ["/ws/v1/ping", "/ws/v1/ping?token=bf_wrong"])
async def test_a_websocket_without_a_valid_key_is_closed_4401(alice: Persona, path: str) -> None:
    communicator = WebsocketCommunicator(application, path)
    connected, code = await communicator.connect()
    assert not connected
    assert code == 4401
