"""Console fixtures: users with memberships, a logged-in client on a tenant's host, a real browser.

Two kinds of users, for two kinds of test:

- `member`, `alice_user`, `acme_console`: rows in the test's transaction,
  rolled back after it. Good for Django's test Client; invisible to the live
  server (uvicorn in another process), so a browser cannot sign in with them.
- `console_users`: committed once per session and deleted at its end. The
  browser tests sign in with these (`tests.console.browser.sign_in`).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from tenants.models import Membership, Role, Tenant
from tests.conftest import Persona
from tests.console.browser import CHROMIUM_ARGS, PASSWORD, chromium_path


def host_of(tenant: Tenant) -> str:
    return str(tenant.domains.get(is_primary=True).domain)


@pytest.fixture
def member() -> Callable[..., User]:
    def make(username: str, tenant: Tenant | None, role: str = Role.OPERATOR, **extra: object) -> User:
        user = User.objects.create_user(username=username, password="pw-" + username, **extra)  # type: ignore[arg-type]
        if tenant is not None:
            Membership.objects.create(user=user, tenant=tenant, role=role)
        return user

    return make


@pytest.fixture
def alice_user(alice: Persona, member: Callable[..., User]) -> User:
    return member("alice", alice.tenant)


@pytest.fixture
def charlie_user(charlie: Persona, member: Callable[..., User]) -> User:
    return member("charlie", charlie.tenant)


@pytest.fixture
def acme_console(alice: Persona, alice_user: User) -> Client:
    """alice, signed in, on acme's console host."""
    client = Client(HTTP_HOST=host_of(alice.tenant))
    client.force_login(alice_user)
    client.tenant = alice.tenant  # type: ignore[attr-defined]
    return client


# -- the browser -------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One chromium per test module, with a fresh profile; each test takes a cookie-free context.

    Module-scoped rather than session-scoped: while sync Playwright is open
    it marks an event loop as running on this thread, and Django then refuses
    ORM calls (SynchronousOnlyOperation) although nothing runs concurrently.
    DJANGO_ALLOW_ASYNC_UNSAFE says so for as long as the browser is open, and
    no longer, so the other test modules keep Django's check.
    """
    executable = chromium_path()
    if executable is None:
        pytest.skip("no chromium binary (apt-get install chromium, or set BEASTFLOW_CHROMIUM): browser tests skipped")
    from playwright.sync_api import sync_playwright

    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as pw:
            # launch() runs chromium on a fresh temporary profile of its own (a new user-data-dir).
            instance = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
            try:
                yield instance
            finally:
                instance.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page_factory(browser: Any) -> Iterator[Any]:
    contexts: list[Any] = []

    def new_page(width: int = 1280, height: int = 860) -> Any:
        context = browser.new_context(viewport={"width": width, "height": height})
        context.set_default_timeout(15_000)
        contexts.append(context)
        return context.new_page()

    yield new_page
    for context in contexts:
        context.close()


@pytest.fixture(scope="session")
def console_users(personas: dict[str, Persona], django_db_blocker: Any) -> Iterator[dict[str, User]]:
    """Committed users: alice operates acme, bob only views acme, charlie operates globex, sam is staff.

    Usernames carry a suffix so that a run never meets a leftover of another.
    """
    suffix = uuid.uuid4().hex[:6]
    with django_db_blocker.unblock():
        users = {
            name: User.objects.create_user(f"{name}-{suffix}", password=PASSWORD, is_staff=name == "sam")
            for name in ("alice", "bob", "charlie", "sam")
        }
        acme, globex = personas["alice"].tenant, personas["charlie"].tenant
        Membership.objects.create(user=users["alice"], tenant=acme, role=Role.OPERATOR)
        Membership.objects.create(user=users["bob"], tenant=acme, role=Role.VIEWER)
        Membership.objects.create(user=users["charlie"], tenant=globex, role=Role.OPERATOR)
    try:
        yield users
    finally:
        with django_db_blocker.unblock():
            User.objects.filter(pk__in=[u.pk for u in users.values()]).delete()
