"""Time 1,000 sample + validate + hash operations per space (the foundation's hot path).

Usage: .venv/bin/python bench/space_ops.py [--n 1000]
Prints one line per space with the load average, so figures from this noisy machine carry
their context.
"""

from __future__ import annotations

import argparse
import os
import random
import time

from morphml import CellSpace, FloatRange, IntRange, Layer, SearchSpace, Space
from morphml.mutation import mutate


def spaces() -> dict[str, Space]:
    cnn = SearchSpace("cnn").add_layers(
        Layer.input(shape=(1, 28, 28)),
        Layer.conv2d(filters=[32, 64], kernel_size=[3, 5]),
        Layer.relu(),
        Layer.maxpool(pool_size=2),
        Layer.flatten(),
        Layer.dense(units=[64, 128]),
        Layer.output(units=10),
    )
    deep = SearchSpace("deep-residual").add_layers(
        Layer.input(shape=(3, 32, 32)),
        Layer.conv2d(filters=32, kernel_size=[3, 5]),
        Layer.repeat(
            Layer.residual(
                Layer.conv2d(filters=32, kernel_size=[1, 3, 5]),
                Layer.batchnorm(optional=True),
                Layer.activation(["relu", "gelu", "silu"]),
            ),
            depth=IntRange(1, 6),
        ),
        Layer.global_avgpool(),
        Layer.dropout(rate=FloatRange(0.0, 0.5)),
        Layer.output(units=10),
    )
    return {"cnn (design example)": cnn, "deep residual": deep, "nas-bench-201 cell": CellSpace()}


def time_ops(space: Space, n: int) -> tuple[float, float]:
    rng = random.Random(0)
    start = time.perf_counter()
    for _ in range(n):
        architecture = space.sample(rng)  # sampling builds and validates (shapes, DAG)
        assert architecture.hash
    sampled = time.perf_counter() - start
    parent = space.sample(rng)
    start = time.perf_counter()
    for _ in range(n):
        parent = mutate(space, parent, rng)
        assert parent.hash
    return sampled, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=1000)
    n = parser.parse_args().n
    print(f"load average {os.getloadavg()[0]:.2f}; {n} operations per space")
    print(f"{'space':24} {'sample+validate+hash':>22} {'mutate+validate+hash':>22}")
    for name, space in spaces().items():
        sampled, mutated = time_ops(space, n)
        print(f"{name:24} {sampled:>20.3f} s {mutated:>20.3f} s")


if __name__ == "__main__":
    main()
