"""The dependency rule (docs/architecture.md): server and worker never import each other, and the
core library and CLI import torch only where a model is built or trained."""

from __future__ import annotations

import subprocess
import sys

import pytest


def imported_roots(modules: str) -> set[str]:
    roots = "{m.split('.')[0] for m in sys.modules}"
    code = f"import sys; import {modules}; print(' '.join(sorted({roots})))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return set(result.stdout.split())


@pytest.mark.parametrize(
    ("modules", "forbidden"),
    [
        ("worker.cli, worker.agent", {"server"}),
        (
            "morphml, morphml.optimizers, morphml.client, morphml.space, morphml.evaluators, "
            "morphml.weight_sharing",
            {"server", "worker", "torch"},
        ),
        ("morphml.cli.main", {"server", "worker", "torch"}),
    ],
)
def test_forbidden_imports(modules: str, forbidden: set[str]) -> None:
    assert imported_roots(modules) & forbidden == set()
