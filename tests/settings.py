"""Test settings: the real ones, with a Redis namespace of their own."""

from __future__ import annotations

import os

# Before the import: the prefix shapes the cache, channel layer and broker keys.
# A namespace per test run (children inherit it through the environment), so
# two runs on one machine never consume each other's Celery tasks.
os.environ.setdefault("BEASTFLOW_REDIS_PREFIX", f"bftest{os.getpid()}")
os.environ.setdefault("BEASTFLOW_LOG_LEVEL", "WARNING")

from beastflow.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed; never outside tests
