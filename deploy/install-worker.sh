#!/usr/bin/env bash
# Install the MorphML worker agent and its torch into the Python environment of $PYTHON, then
# check that the console script starts and torch imports. The worker image runs this;
# tests/deploy runs the CPU variant in a fresh virtual environment.
#
# usage: PYTHON=/opt/venv/bin/python TORCH=cpu|preinstalled deploy/install-worker.sh SOURCE
#   TORCH=cpu           install torch==2.13.0 from the indexes pip is configured with (the image
#                       sets TORCH_INDEX_URL to the CPU wheel index); never an unpinned torch,
#                       which would resolve to a multi-GB CUDA build.
#   TORCH=preinstalled  keep the torch the base image ships (a CUDA PyTorch image); it must be
#                       2.13.0 (any local build tag, e.g. +cu128), or the install stops here.
#   SOURCE: a MorphML source tree (a checkout) or a built wheel.
set -euo pipefail
source_path=${1:?usage: install-worker.sh SOURCE (a source tree or a wheel)}
python=${PYTHON:-python3}
torch_version=2.13.0
case "${TORCH:-cpu}" in
    cpu)
        # TORCH_INDEX_URL (the image sets the CPU wheel index) or pip's own configuration.
        "$python" -m pip install ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} "torch==$torch_version"
        ;;
    preinstalled)
        found=$("$python" -c 'import torch; print(torch.__version__)') || {
            echo "install-worker.sh: TORCH=preinstalled but torch does not import" >&2
            exit 1
        }
        if [ "${found%%+*}" != "$torch_version" ]; then
            echo "install-worker.sh: the base image has torch $found; MorphML pins $torch_version" >&2
            exit 1
        fi
        ;;
    *)
        echo "install-worker.sh: TORCH must be cpu or preinstalled, not '${TORCH}'" >&2
        exit 2
        ;;
esac
# The extra pins torch==2.13.0 too, which the torch above already satisfies.
if [ -f "$source_path" ]; then
    spec="morphml[worker] @ file://$(cd "$(dirname "$source_path")" && pwd)/$(basename "$source_path")"
else
    spec="$source_path[worker]"
fi
"$python" -m pip install "$spec"
bin=$(dirname "$python")
"$bin/morphml-worker" --help >/dev/null
"$python" -c 'import torch; print("install-worker.sh: torch", torch.__version__, "cuda", torch.cuda.is_available())'
