# syntax=docker/dockerfile:1
# One image for every cafeflow process (ingest, orders, reporting, worker, beat, flower, migrate): they are
# one Python package with one dependency set, so one image means one build, one lock, one vulnerability
# scan and one tag to roll out; the process is chosen by the command (`cafeflow serve ingest`, ...).
# Base pinned by version; pin it by digest too where the registry is reachable (`docker buildx imagetools
# inspect python:3.11.13-slim-bookworm`) and pass it as --build-arg PYTHON_IMAGE=python@sha256:...
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/cafeflow
# Dependencies first, from the hashed lock (make lock), so code changes reuse this layer.
COPY requirements.lock ./
RUN /opt/cafeflow/bin/pip install --require-hashes --no-deps -r requirements.lock
COPY pyproject.toml README.md ./
COPY services ./services
RUN /opt/cafeflow/bin/pip install --no-deps . \
    && /opt/cafeflow/bin/python -m compileall -q /opt/cafeflow/lib

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="cafeflow" \
      org.opencontainers.image.description="cafeflow services: ingest, orders, reporting, transform worker, beat, flower"
# No compilers, pip caches or sources here: only the virtualenv built above. HOME is /tmp, the one
# writable place under a read-only root (gunicorn 27 puts its control socket in ~/.gunicorn).
ENV PATH=/opt/cafeflow/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    CAFEFLOW_ENV=production \
    HEALTHCHECK_URL=http://127.0.0.1:8001/healthz \
    HOME=/tmp
RUN groupadd --system --gid 1000 cafeflow \
    && useradd --system --uid 1000 --gid 1000 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin cafeflow
COPY --from=build /opt/cafeflow /opt/cafeflow
# An empty working directory: settings read an optional .env from here, and none must ever be baked in.
WORKDIR /app
USER 1000:1000
EXPOSE 8001 8002 8003 5555 9808 9809
# Web services answer /healthz; worker and beat serve it on WORKER_/BEAT_METRICS_PORT. Compose and
# Kubernetes set the URL (or their own probes) per service.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['HEALTHCHECK_URL'], timeout=4)"]
CMD ["cafeflow", "serve", "ingest"]
