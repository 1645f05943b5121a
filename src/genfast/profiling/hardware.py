"""Facts about the machine a measurement was taken on, and its memory bandwidth."""

from __future__ import annotations

import functools
import os
import platform
import time
from importlib import metadata

import torch

# Instruction sets that decide which kernels a CPU can run fast.
ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile", "amx_bf16",
             "amx_int8", "neon", "asimd", "sve")
_LIBRARIES = ("torch", "transformers", "tokenizers", "numpy", "onnxruntime", "openvino", "tensorrt", "genfast")


@functools.cache
def _cpu_info() -> dict:
    try:
        import cpuinfo

        return cpuinfo.get_cpu_info()
    except Exception:  # noqa: BLE001 - cpuinfo probes the OS in ways that can fail
        return {}


def cpu_flags() -> set[str]:
    """The instruction-set flags this CPU advertises (/proc/cpuinfo where there is one: cpuinfo takes ~1 s)."""
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return set(line.split(":", 1)[1].split())
    return set(_cpu_info().get("flags", []))


def cpu_supports(flag: str) -> bool:
    """Whether this CPU advertises ``flag`` (e.g. ``avx512_bf16``, ``amx_tile``)."""
    return flag in cpu_flags()


def library_versions() -> dict[str, str]:
    versions = {}
    for name in _LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def hardware_facts(device: torch.device | None = None) -> dict:
    """CPU model, cores, threads, relevant instruction sets, GPU name, library versions."""
    flags = cpu_flags()
    facts = {
        "cpu": _cpu_info().get("brand_raw") or platform.processor() or platform.machine(),
        "arch": platform.machine(),
        "logical_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "isa": sorted(f for f in ISA_FLAGS if f in flags),
        "os": platform.platform(),
        "python": platform.python_version(),
        "libraries": library_versions(),
    }
    if device is not None and device.type == "cuda":
        facts["gpu"] = torch.cuda.get_device_name(device)
    return facts


def measure_read_bandwidth(device: torch.device | str = "cpu", size_mb: int = 512, repeats: int = 7) -> float:
    """Memory read bandwidth of ``device`` in bytes/s, measured now (CPU: with the current thread count).

    A reduction over a buffer much larger than the caches reads every byte once; the best
    of ``repeats`` runs is the bandwidth this process can get.
    """
    from genfast.devices import synchronize

    dev = torch.device(device)
    x = torch.ones(size_mb * 1024 * 1024 // 4, dtype=torch.float32, device=dev)
    x.sum()  # touch every page before timing
    best = float("inf")
    for _ in range(repeats):
        synchronize(dev)
        start = time.perf_counter()
        x.sum()
        synchronize(dev)
        best = min(best, time.perf_counter() - start)
    return x.numel() * 4 / best


@functools.cache
def _bandwidth_cached(device: str, threads: int, size_mb: int, repeats: int) -> float:
    return measure_read_bandwidth(device, size_mb, repeats)


def memory_read_bandwidth(device: torch.device | str = "cpu", size_mb: int = 512, repeats: int = 7) -> float:
    """:func:`measure_read_bandwidth`, measured once per process and setting (profiles reuse it)."""
    return _bandwidth_cached(str(device), torch.get_num_threads(), size_mb, repeats)
