"""Time per decode step on the demo model, split into model compute and everything else.

    python benchmarks/decode_overhead.py [--threads 2]

For each torch backend (and the torch backend over genfast's int8 / int4 layers): the wall time of a decode step (median of 5 x 32 steps after a 128-token
prompt, batch 1, sampling included) and, from torch.profiler, the time inside compute kernels
(matmuls and attention; genfast's one-operator layer stack for int8 weights counts whole, its
norms and activations included). The rest is Python, cache handling, small ops and sampling.
Writes benchmarks/results/decode_overhead.{json,md}.
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import sys
import time
from pathlib import Path
from unittest import mock

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).parent))
from _results import write_results  # noqa: E402

from genfast.backends.registry import get_backend  # noqa: E402
from genfast.compress import compress_  # noqa: E402
from genfast.compress.recipe import parse_quantize, step_config  # noqa: E402
from genfast.models.loading import load
from genfast.profiling.workload import prompt_windows
from genfast.runtime import compiled
from genfast.runtime.sampling import greedy
from genfast.textdata import reference_text

COMPUTE_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::_scaled_dot_product_flash_attention_for_cpu",
               "aten::_scaled_dot_product_attention_math", "aten::_weight_int8pack_mm",
               "aten::_weight_int4pack_mm_for_cpu", "genfast::int8_gemv", "genfast::fp32_gemv",
               "genfast::decode_attention",
               "genfast::decode_layers")
CASES = [("hf", None), ("torch", None), ("torch-compile", None), ("torch", "int8-weight"), ("torch-compile", "int8-weight"),
         ("torch", "int4-weight")]
STEPS = 32


def decode_steps(runtime, cache, token, n: int):
    for _ in range(n):
        logits, cache = runtime.decode(token, cache)
        token = greedy(logits)
    return cache, token


def measure(runtime, ids, profiled=None) -> dict:
    """Wall time per step of ``runtime``; compute from the profile of ``profiled`` (default: the same)."""
    walls = []
    for _ in range(5):
        _, cache = runtime.prefill(ids)
        token = torch.tensor([1])
        decode_steps(runtime, cache, token, 2)  # warm
        start = time.perf_counter()
        decode_steps(runtime, cache, token, STEPS)
        walls.append((time.perf_counter() - start) / STEPS)
    profiled = profiled or runtime
    _, cache = profiled.prefill(ids)
    decode_steps(profiled, cache, torch.tensor([1]), 2)  # compile, warm
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        decode_steps(profiled, cache, torch.tensor([1]), STEPS)
    compute = sum(e.self_cpu_time_total for e in prof.key_averages() if e.key in COMPUTE_OPS) / 1e6 / STEPS
    wall = statistics.median(walls)
    return {"step_ms": wall * 1e3, "compute_ms": compute * 1e3, "other_ms": (wall - compute) * 1e3,
            "other_share": (wall - compute) / wall}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    handle = load("demo")
    ids = prompt_windows(handle.tokenizer(reference_text())["input_ids"], 128, 1, 0)
    rows = {}
    for name, quantize in CASES:
        target = handle
        if quantize:  # genfast optimize --quantize, on a copy
            target = copy.copy(handle)
            target.model = copy.deepcopy(handle.model)
            compress_(target, step_config(parse_quantize(quantize)))
        label = f"{name} + {quantize}" if quantize else name
        runtime = get_backend(name).build(target, batch=1, max_cache_len=128 + STEPS + 8)
        profiled = None
        if name == "torch-compile":  # the C++ wrapper calls matmul kernels the profiler cannot see
            with mock.patch.dict(compiled.CPU_OPTIONS, {"cpp_wrapper": False}):
                profiled = get_backend(name).build(target, batch=1, max_cache_len=128 + STEPS + 8)
        rows[label] = measure(runtime, ids, profiled)
        print(label, rows[label], flush=True)
    lines = ["| backend | decode step ms | compute (matmul + attention) ms | everything else ms | share else |",
             "|---|---|---|---|---|"]
    lines += [f"| {n} | {r['step_ms']:.2f} | {r['compute_ms']:.2f} | {r['other_ms']:.2f} | {r['other_share']:.0%} |"
              for n, r in rows.items()]
    header = (f"Demo model, batch 1, 128-token prompt, greedy; {platform.processor() or platform.machine()}, "
              f"{args.threads} threads; command: `python benchmarks/decode_overhead.py`. Compute is the "
              "profiler's self time of matmul and attention kernels; the profiler's own overhead is not in the "
              "wall times (measured without it). For `torch-compile` the profile is taken on the same graph "
              "built with inductor's Python wrapper (the default C++ one calls matmul kernels the profiler "
              "does not record).")
    write_results("decode_overhead", rows, header, lines)


if __name__ == "__main__":
    main()
