"""genfast's own CPU kernels: small C sources compiled on first use with the machine's compiler."""

import torch


def via_dispatcher() -> bool:
    """Whether a kernel call should go through its custom op: under ``torch.compile`` (so the graph
    keeps it) or the profiler (so it is timed under its name). Otherwise ctypes is called directly,
    a few microseconds cheaper per call."""
    return torch.compiler.is_compiling() or torch.autograd._profiler_enabled()
