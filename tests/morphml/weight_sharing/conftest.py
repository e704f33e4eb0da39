"""One torch thread for these tests: their tensors are tiny, and on a shared machine extra
threads only wait for each other (a one-second search took twenty)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
