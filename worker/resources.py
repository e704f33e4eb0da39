"""What this machine offers: CPUs and memory (psutil), GPUs (NVML, else torch.cuda).

NVML is preferred because it reads GPUs without creating a CUDA context in the agent (which
would pin a few hundred MB on every GPU for the agent's lifetime) and reports free memory.
"""

from __future__ import annotations

import glob
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import psutil

from morphml.wire import GpuInfo, WorkerResources

log = logging.getLogger("morphml.worker")


class ResourceError(ValueError):
    """A `--gpus` value that does not match the machine."""


@dataclass(frozen=True)
class Gpu:
    """One GPU as NVML numbers it (PCI bus order; the child sets CUDA_DEVICE_ORDER to match)."""

    index: int
    name: str
    memory_mb: int


@dataclass(frozen=True)
class Machine:
    """What this worker offers: its host, CPUs, memory and the GPUs it was told to use."""

    host: str
    cpus: int
    memory_mb: int
    gpus: tuple[Gpu, ...] = ()

    def resources(self) -> WorkerResources:
        """As the server registers them."""
        gpus = [GpuInfo(index=g.index, name=g.name, memory_mb=g.memory_mb) for g in self.gpus]
        return WorkerResources(cpus=self.cpus, memory_mb=self.memory_mb, gpus=gpus)


def cpu_count() -> int:
    """CPUs this process may run on (respects taskset/cgroup affinity, unlike os.cpu_count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, psutil.cpu_count(logical=True) or 1)


def memory_mb() -> int:
    return int(psutil.virtual_memory().total // 2**20)


def discover_gpus() -> list[Gpu]:
    """All GPUs of the machine; empty when neither NVML nor a CUDA-enabled torch finds any."""
    try:
        return _nvml_gpus()
    except Exception as exc:  # ImportError, NVMLError_LibraryNotFound, driver errors...
        log.debug("NVML unavailable (%s); asking torch.cuda", exc)
    if not _gpu_device_nodes():
        return []  # no driver device nodes: importing torch (seconds) could not find any either
    try:
        return _torch_gpus()
    except Exception as exc:
        log.debug("torch.cuda unavailable (%s); no GPUs", exc)
        return []


def _gpu_device_nodes() -> list[str]:
    """NVIDIA (/dev/nvidia0...) or ROCm (/dev/kfd) device nodes, as drivers and containers add."""
    return glob.glob("/dev/nvidia[0-9]*") + glob.glob("/dev/kfd")


def _nvml_gpus() -> list[Gpu]:
    import pynvml

    pynvml.nvmlInit()
    try:
        gpus = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            name = pynvml.nvmlDeviceGetName(handle)
            name = name.decode() if isinstance(name, bytes) else str(name)
            total = int(pynvml.nvmlDeviceGetMemoryInfo(handle).total) // 2**20
            gpus.append(Gpu(index, name, total))
        return gpus
    finally:
        pynvml.nvmlShutdown()


def _torch_gpus() -> list[Gpu]:
    import torch

    if not torch.cuda.is_available():
        return []
    gpus = []
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        gpus.append(Gpu(index, str(props.name), int(props.total_memory) // 2**20))
    return gpus


class NvmlUnavailable(Exception):
    """NVML cannot be loaded or initialised here (not installed, no NVIDIA driver, ROCm)."""


class FreeGpuMemory:
    """Free memory of a GPU now, in MiB, as NVML reads it; callable as `free(gpu)`.

    Without NVML on the machine (its GPUs were found by torch) nothing can be measured, and the
    GPU's total is the best guess, as at registration. When NVML is there but cannot read the GPU
    (a driver error, a GPU fallen off the bus) the answer is None: unknown, to be treated as busy.
    Reporting it as free would hand it tasks that then fail one after another. The warning comes
    once per GPU until it reads again, not at every claim.
    """

    def __init__(self) -> None:
        self._unreadable: set[int] = set()

    def __call__(self, gpu: Gpu) -> int | None:
        try:
            free = _nvml_free_mb(gpu.index)
        except NvmlUnavailable:
            return gpu.memory_mb
        except Exception as exc:  # any NVMLError, or whatever a broken driver raises
            if gpu.index not in self._unreadable:
                self._unreadable.add(gpu.index)
                log.warning(
                    "gpu %d: cannot read its free memory (%s); treating it as busy", gpu.index, exc
                )
            return None
        if gpu.index in self._unreadable:
            self._unreadable.discard(gpu.index)
            log.info("gpu %d: free memory readable again (%d MiB)", gpu.index, free)
        return free


def _nvml_free_mb(index: int) -> int:
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception as exc:
        raise NvmlUnavailable(str(exc)) from exc
    try:
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        return int(pynvml.nvmlDeviceGetMemoryInfo(handle).free) // 2**20
    finally:
        pynvml.nvmlShutdown()


# What the agent asks before each claim on a GPU slot.
free_gpu_memory_mb = FreeGpuMemory()


def select_gpus(
    spec: str, environ: Mapping[str, str], discover: Callable[[], list[Gpu]] = discover_gpus
) -> list[Gpu]:
    """The GPUs to use for `--gpus` "auto", "none" or "0,1".

    "auto" honours a CUDA_VISIBLE_DEVICES the agent was started with (integer indices only),
    so an operator can fence a worker to part of a box the usual way. "none" skips discovery
    (and its torch import, seconds on a small machine).
    """
    spec = spec.strip().lower()
    if spec in ("none", "", "cpu"):
        return []
    discovered = discover()
    if spec == "auto":
        visible = environ.get("CUDA_VISIBLE_DEVICES")
        if visible is None:
            return discovered
        wanted = _parse_indices(visible, "CUDA_VISIBLE_DEVICES") if visible.strip() else []
        return [gpu for gpu in discovered if gpu.index in wanted]
    wanted = _parse_indices(spec, "--gpus")
    by_index = {gpu.index: gpu for gpu in discovered}
    missing = [index for index in wanted if index not in by_index]
    if missing:
        found = sorted(by_index) or "none"
        raise ResourceError(f"--gpus: no GPU with index {missing} on this machine (found: {found})")
    return [by_index[index] for index in wanted]


def _parse_indices(text: str, where: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ResourceError(
            f"{where}: expected comma-separated GPU indices, got {text!r}"
        ) from None
