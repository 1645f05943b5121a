"""Compile a kernel's C source once per machine and load it with ctypes.

The library is built with ``-march=native`` for the CPU it runs on, so it is cached per source,
compiler flags and CPU instruction set (``~/.cache/genfast/kernels``, ``GENFAST_CACHE_DIR``
moves it). OpenMP comes from the ``libgomp`` PyTorch has already loaded, so both share one
thread pool. Without a working compiler :func:`load_library` returns None and callers use
PyTorch's kernels instead.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

from genfast import envs
from genfast.profiling.hardware import cpu_flags

# tried in order: the first set the compiler accepts wins (clang on macOS has no -fopenmp)
_FLAG_SETS = (["-O3", "-march=native", "-fopenmp"], ["-O3", "-march=native"], ["-O3"])


def _compiler() -> str | None:
    return shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc") or shutil.which("clang")


def _library_path(source: Path, compiler: str, flags: list[str]) -> Path:
    key = hashlib.sha256()
    for part in (source.read_bytes(), compiler.encode(), " ".join(flags).encode(),
                 " ".join(sorted(cpu_flags())).encode()):
        key.update(part)
    return envs.cache_dir() / "kernels" / f"{source.stem}-{key.hexdigest()[:16]}.so"


def _compile(source: Path, compiler: str, flags: list[str], target: Path) -> bool:
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        built = Path(tmp) / target.name
        proc = subprocess.run([compiler, *flags, "-shared", "-fPIC", str(source), "-o", str(built), "-lm"],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            return False
        os.replace(built, target)  # atomic: a concurrent process sees the old state or the whole file
    return True


def native_function(source: Path, symbol: str, argtypes: tuple) -> Callable[..., None] | None:
    """``symbol`` (returning void) of the library built from ``source``, or None where it cannot be built."""
    library = load_library(source)
    if library is None:
        return None
    function = getattr(library, symbol)
    function.argtypes, function.restype = list(argtypes), None
    return function


def load_library(source: Path) -> ctypes.CDLL | None:
    """The compiled ``source`` (built on the first call on this machine), or None if it cannot be built."""
    if not envs.native_kernels():
        return None
    compiler = _compiler()
    if compiler is None:
        warnings.warn(f"genfast: no C compiler found, so {source.stem} falls back to PyTorch's slower kernel; "
                      "install gcc (or set CC) to build it.", stacklevel=3)
        return None
    for flags in _FLAG_SETS:
        path = _library_path(source, compiler, flags)
        if path.exists() or _compile(source, compiler, flags, path):
            try:
                return ctypes.CDLL(str(path))
            except OSError:
                continue
    warnings.warn(f"genfast: {compiler} could not build {source.name}, so PyTorch's slower kernel is used.",
                  stacklevel=3)
    return None
