"""The SDK tests' tenant fixtures, for the examples' tests too."""

from __future__ import annotations

from tests.sdk.conftest import sdk_tenant, tenant_factory

__all__ = ["sdk_tenant", "tenant_factory"]
