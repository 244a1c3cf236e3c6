"""BeastFlow's settings with the naive baseline's URLs added (bench only, never in the product).

Django under ASGI runs each request's sync code in a thread of its own, so
persistent connections (CONN_MAX_AGE > 0) pile up, one per request thread,
until PostgreSQL refuses clients (seen here at 32 concurrent requests).
The baseline gets Django's own psycopg pool instead (the setup Django
documents for ASGI), so it is measured at its best, not crippled.
"""

from __future__ import annotations

from beastflow.settings import *  # noqa: F403
from beastflow.settings import DATABASES

ROOT_URLCONF = "bench._naive_urls"
PUBLIC_SCHEMA_URLCONF = "bench._naive_urls"

DATABASES["default"]["CONN_MAX_AGE"] = 0
DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {"min_size": 4, "max_size": 16, "timeout": 30}
