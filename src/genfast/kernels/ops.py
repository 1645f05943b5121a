"""Build genfast's CPU operators (``ops.cpp`` over the ``*.c`` kernels) once per machine and load them.

They are compiled by ``torch.utils.cpp_extension`` with ``-march=native`` for the CPU they run
on, so the build is cached per source, flags, CPU instruction set and torch version
(``~/.cache/genfast/kernels``; ``GENFAST_CACHE_DIR`` moves it). OpenMP comes from the ``libgomp``
PyTorch has already loaded, so both share one thread pool. Where they cannot be built (no C++
compiler, ``GENFAST_NATIVE_KERNELS=0``) :func:`load_ops` returns False and callers use PyTorch's
kernels.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import logging
import os
import shutil
import subprocess
import warnings
from pathlib import Path

import torch

from genfast import envs
from genfast.profiling.hardware import cpu_flags

SOURCE = Path(__file__).with_name("ops.cpp")
# tried in order: the first set the compiler accepts wins (e.g. clang on macOS has no -fopenmp)
FLAG_SETS = (["-O3", "-march=native", "-fopenmp"], ["-O3", "-march=native"], ["-O3"])
_log = logging.getLogger("genfast.kernels")


def _compiler() -> str | None:
    return shutil.which(os.environ.get("CXX", "c++")) or shutil.which("g++") or shutil.which("clang++")


def _build_key(source: Path, flags: list[str]) -> str:
    key = hashlib.sha256()
    for path in sorted(source.parent.glob("*.c")) + [source]:  # ops.cpp includes the kernels
        key.update(path.read_bytes())
    for part in (" ".join(flags), torch.__version__, " ".join(sorted(cpu_flags()))):
        key.update(part.encode())
    return key.hexdigest()[:16]


def build(source: Path, flags: list[str]) -> bool:
    """Compile and load the operators in ``source`` (a cache hit just loads them)."""
    from torch.utils import cpp_extension

    name = f"{source.stem}_{_build_key(source, flags)}"
    directory = envs.cache_dir() / "kernels" / name
    if not list(directory.glob("*.so")):
        _log.warning("genfast: building its CPU kernels for this machine (once; 15 s to a minute)")
    directory.mkdir(parents=True, exist_ok=True)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # compiler-version notices
            cpp_extension.load(name=name, sources=[str(source)], extra_cflags=flags,
                               extra_ldflags=[f for f in flags if f == "-fopenmp"], build_directory=str(directory),
                               is_python_module=False)
    except (RuntimeError, OSError, ImportError, subprocess.CalledProcessError):
        return False
    return True


@functools.cache
def load_ops() -> bool:
    """Whether ``torch.ops.genfast`` is available (built on the first call on this machine)."""
    if not envs.native_kernels():
        return False
    if _compiler() is None:
        warnings.warn("genfast: no C++ compiler found, so PyTorch's slower kernels run instead of genfast's; "
                      "install g++ (or set CXX) to build them.", stacklevel=2)
        return False
    if not any(build(SOURCE, flags) for flags in FLAG_SETS):
        warnings.warn(f"genfast: {_compiler()} could not build {SOURCE.name}, so PyTorch's slower kernels run "
                      "instead of genfast's.", stacklevel=2)
        return False
    _register_fakes()
    return True


def cpu_has(*flags: str) -> bool:
    """Whether this CPU has every one of ``flags`` (/proc/cpuinfo spellings): which kernel paths run fast."""
    return set(flags) <= cpu_flags()


@torch.compiler.assume_constant_result  # torch.compile reads it once instead of tracing the build
def available() -> bool:
    """Whether genfast's kernels are built (or can be) on this machine."""
    return load_ops()


def _register_fakes() -> None:
    """Output shapes for torch.compile's tracing (the operators themselves are opaque to it)."""

    @torch.library.register_fake("genfast::int8_gemv")
    def _(x, packed, scale, bias):
        return x.new_empty(x.shape[0], scale.shape[0])

    @torch.library.register_fake("genfast::int8_gemm")
    def _(x, packed, scale, wsum, bias):
        return x.new_empty(x.shape[0], scale.shape[0])

    @torch.library.register_fake("genfast::int4_gemv")
    def _(x, packed, scale2, minimum, bias, group_size):
        return x.new_empty(x.shape[0], 2 * packed.shape[0])

    @torch.library.register_fake("genfast::int4_dequantize")
    def _(packed, scale2, minimum, group_size):
        return packed.new_empty(2 * packed.shape[0], packed.shape[1] * 32, dtype=torch.bfloat16)

    @torch.library.register_fake("genfast::fp32_gemv")
    def _(x, weight, bias):
        return x.new_empty(x.shape[0], weight.shape[0])

    @torch.library.register_fake("genfast::decode_attention")
    def _(q, k, v, lengths):
        return torch.empty_like(q, memory_format=torch.contiguous_format)

    @torch.library.register_fake("genfast::decode_layers")
    def _(x, positions, k_caches, v_caches, plans, rope_cos, rope_sin):
        return torch.empty_like(x, memory_format=torch.contiguous_format)
