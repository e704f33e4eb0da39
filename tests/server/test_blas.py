"""The optimizers the server builds run on one BLAS thread (server/blas.py), whichever thread
builds them; checked in a fresh interpreter, since the limit outlives the call."""

from __future__ import annotations

import json
import os
import subprocess
import sys

SCRIPT = """
import json, threading
from threadpoolctl import threadpool_info
from server.spec import build_optimizer
from tests.server.support import spec

def blas_threads():
    return sorted({lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"})

before = blas_threads()
seen = []
def refill_thread():
    build_optimizer(spec(optimizer={"name": "surrogate", "params": {}}))
    seen.append(blas_threads())
for _ in range(2):  # two threads of the refill pool, one after the other
    thread = threading.Thread(target=refill_thread)
    thread.start()
    thread.join()
print(json.dumps({"before": before, "seen": seen}))
"""


def test_building_an_optimizer_limits_blas_to_one_thread() -> None:
    env = {"OPENBLAS_NUM_THREADS": "", "OMP_NUM_THREADS": "", "MKL_NUM_THREADS": ""}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env={**_environment(), **env},
    )
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["before"], "numpy loaded no BLAS that threadpoolctl knows"
    assert found["seen"] == [[1], [1]]


def _environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("MORPHML_")}
