"""Request body examples for the OpenAPI document (Swagger UI's "Examples" menu).

Each is a request the server accepts as it stands (tests/server/test_docs_examples.py posts every
one of them); a lease token is a placeholder for the one the claim returned.
"""

from __future__ import annotations

from typing import Any

from morphml.wire import NB201_CELL_SPACE, SMALL_SEQUENTIAL_SPACE

Examples = dict[str, dict[str, Any]]

# README's "Search spaces" example: `SearchSpace("cnn").add_layers(...).to_dict()`.
CNN_SPACE: dict[str, Any] = {
    "type": "sequential",
    "name": "cnn",
    "layers": [
        {"type": "input", "shape": [1, 28, 28]},
        {"type": "conv2d", "filters": {"choice": [32, 64]}, "kernel_size": {"choice": [3, 5]}},
        {"type": "batchnorm", "optional": True},
        {"type": "activation", "fn": {"choice": ["relu", "gelu", "silu"]}},
        {"type": "maxpool", "pool_size": 2},
        {
            "type": "repeat",
            "depth": {"choice": [0, 1, 2]},
            "layers": [
                {
                    "type": "residual",
                    "layers": [
                        {"type": "conv2d", "filters": {"choice": [32, 64]}},
                        {"type": "activation", "fn": "relu"},
                    ],
                }
            ],
        },
        {"type": "flatten"},
        {"type": "dense", "units": {"int": [32, 512], "log": True}},
        {"type": "dropout", "rate": {"float": [0.0, 0.5], "log": False}},
        {"type": "output", "units": 10},
    ],
}

EXPERIMENT: Examples = {
    "cnn-mnist": {
        "summary": "A CNN search on MNIST (sequential space)",
        "description": "README's spec: regularized evolution over a CNN space with choices, an "
        "optional layer, repeated residual blocks and int/float ranges; each candidate trained "
        "3 epochs on 10,000 MNIST images.",
        "value": {
            "name": "digits-cnn",
            "search_space": CNN_SPACE,
            "optimizer": {
                "name": "regularized_evolution",
                "params": {"population_size": 20, "sample_size": 5},
            },
            "objectives": [{"metric": "val_accuracy", "direction": "maximize"}],
            "evaluator": {
                "kind": "train",
                "params": {"dataset": "mnist", "epochs": 3, "train_size": 10000},
            },
            "budget": {"max_evaluations": 50, "max_seconds": None},
            "parallelism": 4,
            "lease_seconds": 60,
            "max_attempts": 3,
            "priority": 0,
            "resources": {"gpus": 0},
            "pruner": None,
            "seed": 0,
        },
    },
    "nas-bench-201": {
        "summary": "NAS-Bench-201 from its published table (cell space)",
        "description": "The NAS-Bench-201 cell space, each candidate looked up in the benchmark's "
        "CIFAR-10 table instead of trained: a search benchmark that runs in seconds.",
        "value": {
            "name": "nb201-cifar10",
            "search_space": NB201_CELL_SPACE,
            "optimizer": {"name": "default"},
            "evaluator": {"kind": "tabular", "params": {"dataset": "cifar10", "seed": 0}},
            "budget": {"max_evaluations": 200},
            "parallelism": 8,
        },
    },
    "multi-objective": {
        "summary": "Accuracy against size, with pruning (sequential space)",
        "description": "NSGA-II on two objectives (see `/pareto`); the median pruner stops "
        "candidates whose intermediate accuracy falls behind.",
        "value": {
            "name": "small-cnn-pareto",
            "search_space": SMALL_SEQUENTIAL_SPACE,
            "optimizer": {"name": "nsga2"},
            "objectives": [
                {"metric": "val_accuracy", "direction": "maximize"},
                {"metric": "num_params", "direction": "minimize"},
            ],
            "evaluator": {"kind": "train", "params": {"dataset": "mnist", "epochs": 4}},
            "budget": {"max_evaluations": 40, "max_seconds": 3600},
            "pruner": {"name": "median"},
            "resources": {"gpus": 1, "gpu_memory_mb": 4000, "labels": {"pool": "a100"}},
        },
    },
}

WORKER: Examples = {
    "gpu-box": {
        "summary": "A machine with two GPUs",
        "value": {
            "name": "gpu-01",
            "host": "gpu-01.cluster",
            "resources": {
                "cpus": 32,
                "memory_mb": 256000,
                "gpus": [
                    {"index": 0, "name": "NVIDIA A100-SXM4-80GB", "memory_mb": 81920},
                    {"index": 1, "name": "NVIDIA A100-SXM4-80GB", "memory_mb": 81920},
                ],
            },
            "labels": {"pool": "a100"},
        },
    },
    "cpu-only": {
        "summary": "A CPU-only machine",
        "value": {"name": "laptop", "host": "laptop", "resources": {"cpus": 8, "memory_mb": 16000}},
    },
}

CLAIM: Examples = {
    "wait": {
        "summary": "Wait up to 30 s for any task that fits what the worker registered",
        "value": {"worker_id": 1, "wait_seconds": 30},
    },
    "one-free-gpu": {
        "summary": "One GPU free right now, with 40 GB",
        "value": {
            "worker_id": 1,
            "wait_seconds": 30,
            "free": {"gpus": 1, "gpu_memory_mb": 40000},
            "labels": {"pool": "a100"},
        },
    },
}

CLAIM_BATCH: Examples = {
    "four-slots": {
        "summary": "Four free CPU slots: up to four tasks, waiting up to 30 s for the first",
        "value": {"worker_id": 1, "wait_seconds": 30, "max_tasks": 4},
    },
    "two-gpus": {
        "summary": "Two free GPUs, each with 40 GB: up to two one-GPU tasks",
        "value": {
            "worker_id": 1,
            "wait_seconds": 30,
            "free": {"gpus": 1, "gpu_memory_mb": 40000},
            "labels": {"pool": "a100"},
            "max_tasks": 2,
        },
    },
}

TOKEN = "the lease_token of the claim"

HEARTBEAT: Examples = {
    "progress": {
        "summary": "Epoch 2 of 4 done, with its validation metrics",
        "value": {
            "lease_token": TOKEN,
            "progress": 0.5,
            "step": 2,
            "metrics": {"val_accuracy": 0.931, "val_loss": 0.24},
        },
    },
    "alive": {"summary": "Only keep the lease", "value": {"lease_token": TOKEN}},
}

COMPLETE: Examples = {
    "trained": {
        "summary": "Final metrics of a trained candidate",
        "value": {
            "lease_token": TOKEN,
            "metrics": {
                "val_accuracy": 0.976,
                "val_loss": 0.081,
                "num_params": 120394,
                "flops": 5012000,
                "train_seconds": 31.5,
            },
        },
    },
}

COMPLETE_AND_CLAIM: Examples = {
    "next-task": {
        "summary": "Final metrics, and the slot's next task if one is pending",
        "value": {
            "lease_token": TOKEN,
            "metrics": {"val_accuracy": 0.976, "val_loss": 0.081},
            "claim": {"worker_id": 1, "max_tasks": 1},
        },
    },
    "one-free-gpu": {
        "summary": "Final metrics; the GPU it ran on is free again",
        "value": {
            "lease_token": TOKEN,
            "metrics": {"val_accuracy": 0.912},
            "claim": {
                "worker_id": 1,
                "free": {"gpus": 1, "gpu_memory_mb": 40000},
                "labels": {"pool": "a100"},
                "max_tasks": 1,
            },
        },
    },
}

FAIL: Examples = {
    "retryable": {
        "summary": "A transient error: run the task again (attempt + 1)",
        "value": {"lease_token": TOKEN, "error": "CUDA out of memory", "retryable": True},
    },
    "permanent": {
        "summary": "The candidate cannot run: fail it for good",
        "value": {
            "lease_token": TOKEN,
            "error": "RuntimeError: shapes cannot be multiplied",
            "retryable": False,
        },
    },
}
