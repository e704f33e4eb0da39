"""GPU discovery (NVML and torch.cuda mocked) and --gpus selection."""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest

from worker import resources
from worker.resources import (
    FreeGpuMemory,
    Gpu,
    ResourceError,
    discover_gpus,
    free_gpu_memory_mb,
    select_gpus,
)


def fake_nvml(names: list[str], total_mb: int = 81_559, free_mb: int = 80_000) -> types.ModuleType:
    module = types.ModuleType("pynvml")
    memory = types.SimpleNamespace(total=total_mb * 2**20, free=free_mb * 2**20)
    calls: dict[str, Any] = {"init": 0, "shutdown": 0}

    def init() -> None:
        calls["init"] += 1

    def shutdown() -> None:
        calls["shutdown"] += 1

    module.nvmlInit = init  # type: ignore[attr-defined]
    module.nvmlShutdown = shutdown  # type: ignore[attr-defined]
    module.nvmlDeviceGetCount = lambda: len(names)  # type: ignore[attr-defined]
    module.nvmlDeviceGetHandleByIndex = lambda i: i  # type: ignore[attr-defined]
    module.nvmlDeviceGetName = lambda h: names[h].encode() if h % 2 else names[h]  # type: ignore[attr-defined]
    module.nvmlDeviceGetMemoryInfo = lambda h: memory  # type: ignore[attr-defined]
    module.calls = calls  # type: ignore[attr-defined]
    return module


def broken_nvml() -> types.ModuleType:
    module = types.ModuleType("pynvml")

    def init() -> None:
        raise OSError("NVML Shared Library Not Found")

    module.nvmlInit = init  # type: ignore[attr-defined]
    return module


def test_nvml_lists_gpus_with_name_and_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    nvml = fake_nvml(["NVIDIA H200", "NVIDIA H200"])
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    assert discover_gpus() == [Gpu(0, "NVIDIA H200", 81_559), Gpu(1, "NVIDIA H200", 81_559)]
    assert nvml.calls == {"init": 1, "shutdown": 1}  # type: ignore[attr-defined]
    assert free_gpu_memory_mb(Gpu(0, "NVIDIA H200", 81_559)) == 80_000


def test_a_gpu_nvml_cannot_read_is_busy_not_free(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    nvml = fake_nvml(["NVIDIA H200"], free_mb=60_000)
    working = nvml.nvmlDeviceGetMemoryInfo  # type: ignore[attr-defined]

    def lost(handle: int) -> Any:
        raise RuntimeError("GPU is lost")

    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    monkeypatch.setattr(nvml, "nvmlDeviceGetMemoryInfo", lost)
    free = FreeGpuMemory()
    gpu = Gpu(0, "NVIDIA H200", 81_559)
    assert free(gpu) is None and free(gpu) is None
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "GPU is lost" in warnings[0].getMessage()
    assert nvml.calls == {"init": 2, "shutdown": 2}  # type: ignore[attr-defined]
    monkeypatch.setattr(nvml, "nvmlDeviceGetMemoryInfo", working)
    assert free(gpu) == 60_000


def test_torch_cuda_is_the_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setitem(sys.modules, "pynvml", broken_nvml())
    monkeypatch.setattr(resources, "_gpu_device_nodes", lambda: ["/dev/kfd"])
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    props = types.SimpleNamespace(name="Tesla T4", total_memory=15_360 * 2**20)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: props)
    assert discover_gpus() == [Gpu(0, "Tesla T4", 15_360)]
    assert free_gpu_memory_mb(Gpu(0, "Tesla T4", 15_360)) == 15_360  # total when NVML is out


def test_no_nvml_and_no_cuda_means_no_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setitem(sys.modules, "pynvml", broken_nvml())
    monkeypatch.setattr(resources, "_gpu_device_nodes", lambda: ["/dev/nvidia0"])
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert discover_gpus() == []


def test_without_device_nodes_torch_is_not_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    def must_not_run() -> bool:
        raise AssertionError("torch.cuda was asked")

    monkeypatch.setitem(sys.modules, "pynvml", broken_nvml())
    monkeypatch.setattr(resources, "_gpu_device_nodes", lambda: [])
    monkeypatch.setattr(torch.cuda, "is_available", must_not_run)
    assert discover_gpus() == []


GPUS = [Gpu(0, "A", 1), Gpu(1, "A", 1), Gpu(2, "A", 1)]


@pytest.mark.parametrize(
    ("spec", "environ", "expected"),
    [
        ("auto", {}, [0, 1, 2]),
        ("auto", {"CUDA_VISIBLE_DEVICES": "2,0"}, [0, 2]),
        ("auto", {"CUDA_VISIBLE_DEVICES": ""}, []),
        ("none", {}, []),
        ("1,2", {}, [1, 2]),
        (" 2 ", {"CUDA_VISIBLE_DEVICES": "0"}, [2]),
    ],
)
def test_select_gpus(spec: str, environ: dict[str, str], expected: list[int]) -> None:
    assert [gpu.index for gpu in select_gpus(spec, environ, lambda: GPUS)] == expected


@pytest.mark.parametrize(
    ("spec", "message"), [("3", r"no GPU with index \[3\]"), ("a,b", "indices")]
)
def test_select_gpus_refuses_what_is_not_there(spec: str, message: str) -> None:
    with pytest.raises(ResourceError, match=message):
        select_gpus(spec, {}, lambda: GPUS)


def test_none_skips_discovery() -> None:
    def discover() -> list[Gpu]:
        raise AssertionError("discovery ran")

    assert select_gpus("none", {}, discover) == []


def test_cpu_and_memory_are_positive() -> None:
    assert resources.cpu_count() >= 1 and resources.memory_mb() > 0
