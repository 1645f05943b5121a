"""fp32 vs bf16 (weights cast) vs bf16 autocast on this CPU, demo model, torch backend, one run.

    python benchmarks/cpu_precision.py

Writes benchmarks/results/cpu_precision.{json,md}.
"""

from __future__ import annotations

import platform
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _results import write_results  # noqa: E402

from genfast.backends.registry import get_backend
from genfast.models.loading import load
from genfast.profiling.hardware import hardware_facts
from genfast.profiling.llm import profile_llm
from genfast.profiling.workload import Workload


def main() -> None:
    torch.set_num_threads(2)
    cases = {"fp32": ("fp32", None), "bf16 weights": ("bf16", None), "fp32 weights, bf16 autocast": ("fp32", "bf16")}
    rows = {}
    for label, (dtype, autocast) in cases.items():
        handle = load("demo", dtype=dtype)
        runtime = get_backend("torch").build(handle, autocast=autocast, max_cache_len=256)
        case = profile_llm(handle, Workload(prompt_lens=[128], output_len=128, repeats=5), runtime=runtime)["cases"][0]
        rows[label] = {"ttft_ms": case["ttft_s"]["median"] * 1e3, "decode_tok_s": case["decode_tokens_per_s"]["median"]}
        print(label, rows[label], flush=True)
    base = rows["fp32"]["decode_tok_s"]
    lines = ["| precision | TTFT ms | decode tok/s | vs fp32 |", "|---|---|---|---|"]
    lines += [f"| {k} | {r['ttft_ms']:.1f} | {r['decode_tok_s']:.1f} | {r['decode_tok_s'] / base:.2f}x |"
              for k, r in rows.items()]
    isa = " ".join(hardware_facts()["isa"])
    header = (f"Demo model, torch backend, prompt 128, 128 new tokens, batch 1, median of 5 runs; "
              f"{platform.machine()} CPU with {isa}, 2 threads; command: `python benchmarks/cpu_precision.py`.")
    write_results("cpu_precision", rows, header, lines)


if __name__ == "__main__":
    main()
