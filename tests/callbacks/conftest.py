from __future__ import annotations

from collections.abc import Iterator

import pytest

from engines.models import Source
from tenants.models import Tenant
from tests.callbacks.support import CommittedWorld, Receiver, committed_world_fixture, receiver_fixture
from tests.conftest import Persona
from tests.factories import make_source


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from receiver_fixture()


@pytest.fixture
def orders(in_acme: Tenant) -> Source:
    return make_source("orders")[0]


@pytest.fixture
def invoices(in_acme: Tenant) -> Source:
    return make_source("invoices")[0]


@pytest.fixture
def acme_world(alice: Persona) -> Iterator[CommittedWorld]:
    yield from committed_world_fixture(alice.tenant)
