"""A real browser for the console tests: Debian's chromium driven by Playwright's sync API.

Never `playwright install`: the machine has no internet, and the system
chromium is what CI installs (.ci/run). Without a chromium binary the
browser tests skip and say why.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from django.conf import settings
from django.contrib.auth.models import User

from tests.conftest import Persona

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Tenant hosts are <slug>.localhost: make sure they reach the test server on IPv4.
    "--host-resolver-rules=MAP *.localhost 127.0.0.1",
]
SCREENSHOTS_DIR = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
# Every committed console user (the `console_users` fixture) signs in with it.
PASSWORD = "console-test-password"


def chromium_path() -> str | None:
    configured = os.environ.get("BEASTFLOW_CHROMIUM")
    if configured:
        return configured if Path(configured).exists() else None
    for candidate in CHROMIUM_CANDIDATES:
        if Path(candidate).exists():
            return candidate
    return shutil.which("chromium")


def screenshots_wanted() -> bool:
    """`BEASTFLOW_SCREENSHOTS=1` makes the browser tests save the README's screenshots."""
    return os.environ.get("BEASTFLOW_SCREENSHOTS", "") not in ("", "0")


def console_url(live_server_url: str, persona: Persona) -> str:
    # tenant_create gives every tenant the host <slug>.<BEASTFLOW_BASE_DOMAIN>.
    return f"http://{persona.tenant.slug}.{settings.BEASTFLOW_BASE_DOMAIN}:{urlparse(live_server_url).port}"


def sign_in(page: Any, base: str, user: User, next_path: str = "/") -> None:
    page.goto(f"{base}/login/?next={next_path}")
    page.fill("#id_username", user.username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state()


def shoot(page: Any, name: str) -> None:
    if screenshots_wanted():
        SCREENSHOTS_DIR.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS_DIR / f"{name}.png"), full_page=True)
