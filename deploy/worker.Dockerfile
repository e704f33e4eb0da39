# syntax=docker/dockerfile:1
# The MorphML worker agent: a CUDA PyTorch base by default, or a slim CPU image with
# --build-arg TORCH=cpu. Non-root; task dirs and the outbox of unacknowledged results on a volume.
#   docker build -f deploy/worker.Dockerfile -t morphml-worker .
#   docker build -f deploy/worker.Dockerfile --build-arg TORCH=cpu -t morphml-worker:cpu .
ARG TORCH=cuda
# Its torch must be 2.13.0 (deploy/install-worker.sh checks, whatever the CUDA build tag).
ARG CUDA_IMAGE=pytorch/pytorch:2.13.0-cuda12.8-cudnn9-runtime
ARG CPU_IMAGE=python:3.11-slim-bookworm

FROM ${CUDA_IMAGE} AS base-cuda
# The venv sees the base image's torch (and its CUDA libraries) instead of installing another.
ENV TORCH_INSTALL=preinstalled VENV_FLAGS=--system-site-packages

FROM ${CPU_IMAGE} AS base-cpu
# The CPU wheel index: a torch from the default index would be the multi-GB CUDA build.
ENV TORCH_INSTALL=cpu VENV_FLAGS= TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

FROM base-${TORCH}
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY . /src
# deploy/install-worker.sh is the whole recipe; CI runs its CPU variant in a fresh venv.
RUN python -m venv ${VENV_FLAGS} /opt/morphml \
    && PYTHON=/opt/morphml/bin/python TORCH=${TORCH_INSTALL} /src/deploy/install-worker.sh /src \
    && rm -rf /src \
    && useradd --system --uid 10001 --user-group --home-dir /var/lib/morphml-worker \
        --create-home morphml
ENV PATH=/opt/morphml/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    MORPHML_WORKER_WORK_DIR=/var/lib/morphml-worker
# Results not yet acknowledged wait in the outbox here: keep it across restarts.
VOLUME ["/var/lib/morphml-worker"]
WORKDIR /var/lib/morphml-worker
USER 10001:10001
# SIGTERM: stop claiming, give running tasks MORPHML_WORKER_GRACE_SECONDS, then hand them back.
STOPSIGNAL SIGTERM
ENTRYPOINT ["morphml-worker"]
