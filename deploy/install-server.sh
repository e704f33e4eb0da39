#!/usr/bin/env bash
# Install the MorphML control plane (no torch) into the Python environment of $PYTHON, then check
# that its console script starts. The server image runs this; tests/deploy runs it in a fresh
# virtual environment, so the recipe is exercised even where no image can be built.
#
# usage: PYTHON=/opt/venv/bin/python deploy/install-server.sh SOURCE
# (The images set PIP_NO_CACHE_DIR=1; a cache here only speeds a local run.)
#   SOURCE: a MorphML source tree (a checkout) or a built wheel.
set -euo pipefail
source_path=${1:?usage: install-server.sh SOURCE (a source tree or a wheel)}
python=${PYTHON:-python3}
"$python" -m pip install "$source_path"
# The server must never pull torch: a CUDA torch would triple the image for nothing.
if "$python" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('torch') is None)"; then
    echo "install-server.sh: torch was installed into the server environment" >&2
    exit 1
fi
bin=$(dirname "$python")
"$bin/morphml-server" --help >/dev/null
"$bin/morphml" --help >/dev/null
echo "install-server.sh: morphml-server installed in $("$python" -c 'import sys; print(sys.prefix)')"
