"""The ingest URL and the ASGI call types, for every layer that must recognise a push.

The fast path answers it (engines/ingest/fastpath.py), the capacity recorder
times it (observability/ingest_capacity.py), the tenant middleware lets it
through without a host (tenants/middleware.py). Nothing here imports Django,
so the benches can import the recorder without setting Django up.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

INGEST_PATH = re.compile(r"^/api/v1/sources/(\d{1,18})/events/?$")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
