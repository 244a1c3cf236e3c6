"""Container health probes: `python -m beastflow.probes ROLE` exits 0 when this container is healthy.

Used by the image's HEALTHCHECK, docker-compose.yml and the Kubernetes
manifests' exec probes (docs/deploy.md). Each checks what only this
container can tell:

  web         this process answers and can serve: GET /readyz?only=database,redis,migrations
              (not the whole /readyz, whose monitor and queue lag are the workers' business:
              a backlog must not take the API out of rotation)
  worker      this container's Celery worker answers a ping (node celery@<hostname>, or
              BEASTFLOW_WORKER_NODE@<hostname>)
  beat        Redis answers and some beat holds the clock's leader lock (a standby beat
              is healthy while another leads; with none leading, every beat fails)
  simulators  the demo's simulated upstreams accept connections
  migrations  nothing is pending in public or any tenant schema (`--wait S`: keep asking
              for up to S seconds): the Kubernetes init containers' wait for the migrate Job

No Django import for web and simulators (they run every few seconds); the
others set Django up.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time
import urllib.error
import urllib.request

WEB_READY_PATH = "/readyz?only=database,redis,migrations"


def web(port: int, timeout_s: float) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{WEB_READY_PATH}", timeout=timeout_s) as answer:
            return None if int(answer.status) == 200 else f"GET {WEB_READY_PATH} answered {answer.status}"
    except urllib.error.HTTPError as exc:
        return f"GET {WEB_READY_PATH} answered {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return f"GET {WEB_READY_PATH} failed: {exc}"


def worker(node: str, timeout_s: float) -> str | None:
    from beastflow.celery import app

    answers = app.control.ping(destination=[node], timeout=timeout_s)
    if any(node in answer for answer in answers or []):
        return None
    return f"worker {node} did not answer a ping within {timeout_s:.0f} s"


def beat() -> str | None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "beastflow.settings")
    import django

    django.setup()
    from beastflow.redis_client import get_redis
    from scheduling.beat import leader_lock_key

    if get_redis().exists(leader_lock_key()):
        return None
    return "no beat holds the clock's leader lock"


def migrations(wait_s: float) -> str | None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "beastflow.settings")
    import django

    django.setup()
    from tenants.schema_migrations import public_state, survey

    deadline = time.monotonic() + wait_s
    while True:
        try:
            problem = None
            if public_state().pending:
                problem = "public has pending migrations"
            elif pending := survey().pending_tenants:
                problem = f"{len(pending)} tenant schemas have pending migrations ({', '.join(pending[:3])}...)"
        except Exception as exc:  # no database yet, or no tables yet: the same wait
            problem = f"{type(exc).__name__}: {exc}"
        if problem is None:
            return None
        if time.monotonic() >= deadline:
            return problem
        print(f"waiting: {problem}", file=sys.stderr, flush=True)
        time.sleep(5)


def simulators(port: int, timeout_s: float) -> str | None:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout_s):
            return None
    except OSError as exc:
        return f"no simulator on 127.0.0.1:{port}: {exc}"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m beastflow.probes", description=__doc__.splitlines()[0])
    parser.add_argument("role", choices=["web", "worker", "beat", "simulators", "migrations"])
    parser.add_argument("--port", type=int, help="web: BEASTFLOW_PORT (8000); simulators: the first demo port (9101)")
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.add_argument("--wait", type=float, default=0.0, help="migrations: keep asking this long (s)")
    args = parser.parse_args(argv)
    if args.role == "web":
        problem = web(args.port or int(os.environ.get("BEASTFLOW_PORT", "8000")), args.timeout)
    elif args.role == "worker":
        node = f"{os.environ.get('BEASTFLOW_WORKER_NODE', 'celery')}@{socket.gethostname()}"
        problem = worker(node, args.timeout)
    elif args.role == "beat":
        problem = beat()
    elif args.role == "migrations":
        problem = migrations(args.wait)
    else:
        problem = simulators(args.port or int(os.environ.get("BEASTFLOW_DEMO_BASE_PORT", "9101")), args.timeout)
    if problem:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
