"""Who is platform staff: the one rule the console's staff pages and the operators' APIs share.

Staff and superusers see every tenant, the platform view and the platform
capacity API. It lives here, below both the console and observability, so
that neither imports the other to ask.
"""

from __future__ import annotations

from typing import Any


def is_platform_staff(user: Any) -> bool:
    # None too: DRF leaves request.user None when no unauthenticated user is configured.
    return bool(user is not None and user.is_authenticated and (user.is_staff or user.is_superuser))
