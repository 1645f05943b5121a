"""The compression targets of the demo model, in one run against the fp32 original.

    python benchmarks/compression_targets.py

Demo model, 128-token prompt, 128 new tokens, batch 1, greedy, 2 threads; every case is profiled
in each of 3 rounds (5 runs after a warm-up each) and the median kept; fp32 torch is profiled first
and last in every round and its 6 figures' median is the baseline. Each candidate's
quality is measured against the fp32 original on the shipped held-out text (genfast.quality).
The roofline columns: weight bytes one decode step reads, and the decode rate the measured
memory read bandwidth would allow if reading them were all a step did. Writes
benchmarks/results/compression_targets.{json,md}.
"""

from __future__ import annotations

import copy
import platform
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _results import markdown_table, write_results  # noqa: E402

from genfast.backends.registry import build_runtime  # noqa: E402
from genfast.compress import compress_  # noqa: E402
from genfast.compress.quantize import DynamicInt8, Int4WeightOnly, Int8WeightOnly  # noqa: E402
from genfast.models.loading import load  # noqa: E402
from genfast.profiling.llm import profile_llm  # noqa: E402
from genfast.profiling.workload import Workload  # noqa: E402
from genfast.quality.budget import QualityBudget  # noqa: E402
from genfast.quality.compare import compare  # noqa: E402

PROMPT, NEW, REPEATS, THREADS, ROUNDS = 128, 128, 5, 2, 3
WORKLOAD = Workload(prompt_lens=[PROMPT], output_len=NEW, repeats=REPEATS, warmup=1)


def _quantized(handle, config):
    copy_ = copy.copy(handle)
    copy_.model = copy.deepcopy(handle.model)
    compress_(copy_, config)
    return copy_


def cases(teacher, student):
    """(label, issue target: (speed-up, max ppl increase) or None, handle, backend, precision)."""
    int8 = _quantized(teacher, Int8WeightOnly())
    return [
        ("fp32", None, teacher, "torch", "fp32"),
        ("int8 weight-only (torch)", (1.8, 0.01), int8, "torch", "fp32"),
        ("int8 weight-only (torch-compile)", (1.8, 0.01), int8, "torch-compile", "fp32"),
        ("int4 weight-only g32 (torch)", (2.5, 0.05), _quantized(teacher, Int4WeightOnly(32)), "torch", "fp32"),
        ("int4 weight-only g128 (torch)", (2.5, 0.05), _quantized(teacher, Int4WeightOnly(128)), "torch", "fp32"),
        ("dynamic int8 (torch)", None, _quantized(teacher, DynamicInt8()), "torch", "fp32"),
        ("int8 weight-only (openvino)", (1.8, 0.01), teacher, "openvino", "int8"),
        ("int4 weight-only (openvino)", (2.5, 0.05), teacher, "openvino", "int4"),
        ("dynamic int8 (onnxruntime)", None, teacher, "onnxruntime", "int8"),
        ("student: prune ffn+heads 25% + distill", (1.25, 0.10), student, "torch", "fp32"),
        ("student + int8 weight-only (torch)", None, _quantized(student, Int8WeightOnly()), "torch", "fp32"),
        ("fp32 (again)", None, teacher, "torch", "fp32"),
    ]


def main() -> None:
    torch.set_num_threads(THREADS)
    teacher, student = load("demo"), load("demo-student")
    built = [(label, target, handle, backend, build_runtime(backend, handle, precision=precision, threads=THREADS,
                                                            max_cache_len=PROMPT + NEW))
             for label, target, handle, backend, precision in cases(teacher, student)]
    runs: dict[str, list[dict]] = {label: [] for label, *_ in built}
    for round_ in range(ROUNDS):  # whole rounds, so slow drift of the machine hits every case alike
        for label, _, handle, _, runtime in built:
            print(f"round {round_ + 1}: {label}", flush=True)
            result = profile_llm(handle, WORKLOAD, runtime=runtime)
            runs[label].append({**result["cases"][0], "bandwidth": result["hardware"]["memory_read_bandwidth_gbs"]})
    fp32_runs = [r["decode_tokens_per_s"]["median"] for label in ("fp32", "fp32 (again)") for r in runs[label]]
    base_tps = statistics.median(fp32_runs)
    raw, rows = [], []
    for label, target, handle, backend, runtime in built:
        case = runs[label][0]
        tps = statistics.median(r["decode_tokens_per_s"]["median"] for r in runs[label])
        ttft = statistics.median(r["ttft_s"]["median"] for r in runs[label])
        roof = case["roofline"]
        is_reference = handle is teacher and backend == "torch"
        quality = None if is_reference else compare(
            teacher, runtime, teacher.tokenizer, budget=QualityBudget(max_ppl_increase=target[1] if target else None))
        ppl_change = quality["perplexity"]["relative_change"]["value"] if quality else 0.0
        verdict = "-"
        if target:
            verdict = "met" if tps / base_tps >= target[0] and ppl_change <= target[1] else "NOT met"
            verdict = f"{target[0]}x, +{target[1]:.0%}: {verdict}"
        raw.append({"label": label, "backend": backend, "target": target, "ttft_s": ttft, "decode_tokens_per_s": tps,
                    "decode_tokens_per_s_by_round": [r["decode_tokens_per_s"]["median"] for r in runs[label]],
                    "roofline": roof, "quality": quality and {k: quality[k] for k in ("perplexity", "top1_agreement",
                                                                                      "greedy")}})
        ceiling = case["bandwidth"] * 1e9 / roof["weight_bytes_per_step"]
        rows.append([label, f"{ttft * 1e3:.1f}", f"{tps:.0f}", f"{tps / base_tps:.2f}x",
                     f"{roof['weight_bytes_per_step'] / 1e6:.1f}", f"{ceiling:.0f}", f"{tps / ceiling:.0%}",
                     f"{quality['perplexity']['candidate']['value']:.2f} ({ppl_change:+.2%})" if quality
                     else "reference", verdict])
    bandwidth = runs["fp32"][0]["bandwidth"]
    caption = (f"Demo model, {platform.machine()} CPU, {THREADS} threads, measured read bandwidth {bandwidth:.1f} GB/s; "
               f"prompt {PROMPT}, {NEW} new tokens, batch 1; decode tok/s is the median over {ROUNDS} rounds of every "
               f"case (each round's figure a median of {REPEATS} runs after a warm-up), all in one process; the fp32 "
               f"baseline ({base_tps:.0f} tok/s) is the median of its {len(fp32_runs)} runs (first and last in each "
               f"round: {', '.join(f'{v:.0f}' for v in fp32_runs)}); perplexity on the shipped held-out text, change "
               "against the fp32 original; command: `python benchmarks/compression_targets.py`.")
    write_results("compression_targets", raw, caption, markdown_table(
        ["case", "TTFT ms", "decode tok/s", "vs fp32", "weights MB/step", "roofline tok/s", "% of roofline",
         "held-out perplexity", "issue target"], rows))


if __name__ == "__main__":
    main()
