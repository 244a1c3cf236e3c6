"""Test settings: the real ones, with a Redis namespace of their own."""

from __future__ import annotations

import os

# Before the import: the prefix shapes the cache, channel layer and broker keys.
# A namespace per test run (children inherit it through the environment), so
# two runs on one machine never consume each other's Celery tasks.
os.environ.setdefault("BEASTFLOW_REDIS_PREFIX", f"bftest{os.getpid()}")
os.environ.setdefault("BEASTFLOW_LOG_LEVEL", "WARNING")
# The simulators and fake endpoints of the suite listen on 127.0.0.1: the
# outbound URL guard (beastflow/netguard.py) refuses loopback unless allowed.
# Tests of the guard itself set their own allow list.
os.environ.setdefault("BEASTFLOW_UPSTREAM_ALLOW", "127.0.0.0/8,::1/128")
# No spare tenant schemas (tenants/schema_spares.py): tenants are cloned as
# they are created, and no worker or clock fills spares behind a test's back;
# tests/tenants/test_spares.py turns them on for itself.
os.environ.setdefault("BEASTFLOW_TENANT_SPARES", "0")
# No outages of BeastFlow's own (engines/watch.py): a session's worker held up
# past the threshold would otherwise forgive the silence tests set up; the
# tests of the watch (tests/engines/test_watch.py) turn it on for themselves.
os.environ.setdefault("BEASTFLOW_MONITOR_OUTAGE_S", "0")

from beastflow.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed; never outside tests

# Parallel runs on one machine (several people or agents) each take a test
# database of their own: BEASTFLOW_TEST_DB=test_beastflow_mine make test.
DATABASES["default"]["TEST"] = {"NAME": os.environ.get("BEASTFLOW_TEST_DB", "test_beastflow")}  # noqa: F405
