"""tenants.staff: the one platform-staff rule the console and the platform capacity API share."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from django.contrib.auth.models import AnonymousUser

from tenants.staff import is_platform_staff


def _user(*, staff: bool = False, superuser: bool = False) -> SimpleNamespace:
    return SimpleNamespace(is_authenticated=True, is_staff=staff, is_superuser=superuser)


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        (_user(staff=True), True),
        (_user(superuser=True), True),
        (_user(), False),  # a tenant's member, signed in
        (AnonymousUser(), False),
        (None, False),  # DRF without an unauthenticated user
    ],
)
def test_staff_and_superusers_signed_in_are_platform_staff(user: object, expected: bool) -> None:
    assert is_platform_staff(user) is expected
