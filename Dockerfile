# syntax=docker/dockerfile:1
# The production image: one image for every BeastFlow process, the command
# picks the role (docs/deploy.md). Runtime dependencies only
# (requirements/runtime.txt: no embedded PostgreSQL or Redis, no test tools),
# running as an unprivileged user.
#
#   docker build -t beastflow .
#   docker run beastflow                                      # web (uvicorn) on :8000
#   docker run beastflow celery -A beastflow worker -Q polls  # a worker of one queue
#   docker run beastflow celery -A beastflow beat             # the clock (leader lock: run two)
#   docker run beastflow python manage.py migrate_tenants     # migrations (a Job, before a rollout)

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: install the locked runtime dependencies into a virtualenv ----------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
COPY requirements/runtime.txt /tmp/runtime.txt
# Wheels only: every runtime dependency ships one for CPython 3.11 on Linux,
# so the image needs no compiler, and a missing wheel fails the build loudly.
RUN /opt/venv/bin/pip install --only-binary=:all: -r /tmp/runtime.txt
COPY . /app
# Byte-compile once here: the runtime user cannot write next to the sources.
RUN /opt/venv/bin/python -m compileall -q /app /opt/venv/lib

# --- runtime --------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
ARG UID=10001
RUN groupadd --system --gid ${UID} beastflow \
    && useradd --system --uid ${UID} --gid beastflow --home-dir /app --shell /usr/sbin/nologin beastflow \
    && install -d -o beastflow -g beastflow /var/lib/beastflow
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
WORKDIR /app
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DJANGO_SETTINGS_MODULE=beastflow.settings \
    BEASTFLOW_STATE_DIR=/var/lib/beastflow \
    BEASTFLOW_REQUIRE_SECRET_KEY=1 \
    BEASTFLOW_LOG_FORMAT=json \
    BEASTFLOW_PORT=8000
USER beastflow:beastflow
EXPOSE 8000
# The web role's probe (this process can serve); compose and Kubernetes give
# workers and beat their own (`python -m beastflow.probes worker|beat`).
HEALTHCHECK --interval=15s --timeout=6s --start-period=30s --retries=3 \
    CMD ["python", "-m", "beastflow.probes", "web"]
CMD ["uvicorn", "beastflow.asgi:application", "--host", "0.0.0.0", "--port", "8000", "--no-access-log", "--proxy-headers", "--forwarded-allow-ips", "*"]
