# syntax=docker/dockerfile:1
# The MorphML control plane: slim Python, no torch, non-root; migrates, then serves on :8000.
#   docker build -f deploy/server.Dockerfile -t morphml-server .
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY . /src
# deploy/install-server.sh is the whole recipe; CI runs the same script in a fresh venv.
RUN python -m venv /opt/morphml \
    && PYTHON=/opt/morphml/bin/python /src/deploy/install-server.sh /src

FROM ${PYTHON_IMAGE}
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/morphml --create-home morphml
COPY --from=build /opt/morphml /opt/morphml
COPY deploy/server-entrypoint.sh /usr/local/bin/morphml-server-entrypoint
ENV PATH=/opt/morphml/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    MORPHML_HOST=0.0.0.0 \
    MORPHML_PORT=8000 \
    MORPHML_DATABASE_URL=sqlite:////var/lib/morphml/morphml.db
# SQLite (the default) lives here; with Postgres (MORPHML_DATABASE_URL) nothing is written.
VOLUME ["/var/lib/morphml"]
WORKDIR /var/lib/morphml
USER 10001:10001
EXPOSE 8000
# Liveness only: /readyz (the database answers) is for load balancers and Kubernetes probes.
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('MORPHML_PORT', '8000'), timeout=2)"]
# SIGTERM: /readyz fails, open long-polls answer 204, in-flight requests finish, exit 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["morphml-server-entrypoint"]
