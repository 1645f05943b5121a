"""Profile any ``nn.Module`` generator: preprocess -> forward -> postprocess."""

from __future__ import annotations

import time

import torch

from genfast.errors import ConfigError
from genfast.models.handle import ModuleSpec
from genfast.profiling import memory
from genfast.profiling.hardware import hardware_facts
from genfast.profiling.stats import summarize
from genfast.profiling.timer import StageTimer

MODULE_STAGES = ("preprocess", "forward", "postprocess")
SCHEMA = "genfast.profile-module/1"


def _device_of(module: torch.nn.Module) -> torch.device:
    first = next(module.parameters(), None)
    return first.device if first is not None else torch.device("cpu")


def profile_module(spec: ModuleSpec, warmup: int = 2, repeats: int = 10) -> dict:
    """Time each stage of ``spec`` over ``repeats`` counted runs after ``warmup`` runs."""
    if repeats < 1 or warmup < 0:
        raise ConfigError(f"Need repeats >= 1 and warmup >= 0, got repeats={repeats}, warmup={warmup}.")
    device = _device_of(spec.module)
    spec.module.eval()
    runs = []
    for i in range(warmup + repeats):
        timer = StageTimer(device)
        start = time.perf_counter()
        with torch.inference_mode():
            with timer.stage("preprocess"):
                x = spec.preprocess(spec.raw_input)
            with timer.stage("forward"):
                y = spec.module(x)
            with timer.stage("postprocess"):
                spec.postprocess(y)
        e2e = time.perf_counter() - start
        if i >= warmup:
            runs.append((timer, e2e))
    e2e = summarize([e for _, e in runs])
    return {
        "schema": SCHEMA,
        "model": {"source": spec.name, "architecture": type(spec.module).__name__,
                  "parameters": memory.parameter_count(spec.module),
                  "weight_bytes": memory.weight_bytes(spec.module), "device": str(device)},
        "hardware": hardware_facts(device),
        "e2e_s": e2e.to_dict(),
        "stages_s": {s: summarize([t.total(s) for t, _ in runs]).to_dict() for s in MODULE_STAGES},
        "memory": {"peak_rss_bytes": memory.peak_rss_bytes(), "cuda_peak_bytes": memory.cuda_peak_bytes(device)},
        "warnings": [f"end-to-end varied by {e2e.cv:.0%} (CV) between runs; the machine is noisy."]
        if e2e.noisy else [],
    }
