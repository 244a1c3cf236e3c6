"""The console's fixtures (signed-in clients, members), for the experiments page."""

from __future__ import annotations

from tests.console.conftest import acme_console, alice_user, member  # noqa: F401 (fixtures)
