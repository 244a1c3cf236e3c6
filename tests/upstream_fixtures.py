"""pytest fixtures over tests/upstream_packages.py: the upstreams' own signers and payloads.

Use from a test module (or a conftest) with

    from tests.upstream_fixtures import upstream_fixture  # noqa: F401  (the `upstream` fixture)

and take `upstream` as an argument: it is the session's UpstreamSigner. When
npm cannot reach its registry the tests that take it are skipped, and the
skip says why; any other failure to install is an error.
"""

from __future__ import annotations

import pytest

from tests.upstream_packages import UpstreamPackagesUnavailableError, UpstreamSigner, signer


@pytest.fixture(scope="session", name="upstream")
def upstream_fixture() -> UpstreamSigner:
    try:
        return signer()
    except UpstreamPackagesUnavailableError as exc:
        pytest.skip(f"the upstreams' npm packages cannot be installed: {exc}")
