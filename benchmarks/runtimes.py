"""Every backend x precision against transformers' eager generate(), in one run.

    python benchmarks/runtimes.py [--models demo gpt2-small] [--threads 2] [--render]
    python benchmarks/runtimes.py --models qwen3-shape phi3-shape --cases core --name runtimes_families

Each case runs in its own process (so its peak memory is its own): 128-token prompt,
128 new tokens, batch 1, greedy with EOS ignored, 1 warm-up + 3 counted runs. Writes
benchmarks/results/runtimes.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _results import write_results  # noqa: E402

WORK = Path(".genfast-work")
# (backend, precision): the backend's own quantization; "int8-weight" and the like: genfast's
# PyTorch quantization (genfast optimize --quantize) run by that torch backend
CASES = [("hf-generate", "fp32"), ("hf", "fp32"), ("torch", "fp32"), ("torch-compile", "fp32"),
         ("torch", "int8-weight"), ("torch-compile", "int8-weight"), ("torch", "int4-weight"),
         ("torch", "int8-dynamic"),
         ("onnxruntime", "fp32"), ("onnxruntime", "int8"), ("openvino", "fp32"), ("openvino", "int8"),
         ("openvino", "int4")]
CORE_CASES = [("hf-generate", "fp32"), ("torch", "fp32"), ("torch-compile", "fp32"), ("torch", "int8-weight"),
              ("onnxruntime", "fp32"), ("openvino", "fp32"), ("openvino", "int8")]
PROMPT, NEW, REPEATS = 128, 128, 3


def _shaped_configs() -> dict:
    """Random-weight models with real families' layer shapes, scaled in depth and vocabulary to fit here."""
    from transformers import GPT2Config, Phi3Config, Qwen3Config

    ids = dict(bos_token_id=1, eos_token_id=2, pad_token_id=0)  # inside the scaled vocabulary
    return {
        "gpt2-small": GPT2Config(),  # GPT-2 small itself (124M)
        # Qwen3-0.6B's layers (width 1024, 16 query / 8 key-value heads of 128, SwiGLU 3072, q/k norms),
        # 8 of its 28, a 16k vocabulary: 143M parameters
        "qwen3-shape": Qwen3Config(hidden_size=1024, intermediate_size=3072, num_hidden_layers=8,
                                   num_attention_heads=16, num_key_value_heads=8, head_dim=128, vocab_size=16384,
                                   max_position_embeddings=4096, tie_word_embeddings=True, **ids),
        # Phi-3-mini's layers (width 3072, 32 heads, fused qkv and gate/up 8192), 1 of its 32, a 16k
        # vocabulary: 214M parameters
        "phi3-shape": Phi3Config(hidden_size=3072, intermediate_size=8192, num_hidden_layers=1,
                                 num_attention_heads=32, num_key_value_heads=32, vocab_size=16384,
                                 max_position_embeddings=4096, tie_word_embeddings=False, **ids),
    }


def model_dir(name: str) -> str:
    """`demo`, or a random model of one of ``_shaped_configs``, saved once under .genfast-work/."""
    configs = _shaped_configs()
    if name not in configs:
        return name
    path = WORK / f"{name}-random"
    if not (path / "config.json").exists():
        from transformers import AutoModelForCausalLM

        from genfast.models.loading import load

        torch.manual_seed(0)
        AutoModelForCausalLM.from_config(configs[name]).save_pretrained(path)
        load("demo").tokenizer.save_pretrained(path)  # ids < 8192 fit every head here
    return str(path)


def _generate_baseline(handle) -> dict:
    """transformers' own generate(), eager fp32 (genfast.tuning.trial.time_generate, as `genfast tune` times it)."""
    from genfast.profiling.memory import weight_bytes_read_per_step
    from genfast.profiling.workload import Workload
    from genfast.tuning.trial import time_generate

    out = time_generate(handle, Workload(prompt_lens=[PROMPT], output_len=NEW, repeats=REPEATS, warmup=1))
    return {"ttft_s": out["ttft_s"], "decode_tokens_per_s": out["decode_tokens_per_s"], "e2e_s": out["e2e_s"],
            "weight_bytes_per_step": weight_bytes_read_per_step(handle.model)}


def build_case(handle, backend: str, precision: str, threads: int):
    """The runtime of one case, built by the trial runner `genfast tune` uses: genfast's PyTorch
    quantization applied first where ``precision`` names one."""
    from genfast.compress.recipe import QUANTIZE_KINDS, Recipe, parse_quantize
    from genfast.tuning import trial

    if precision in QUANTIZE_KINDS:
        recipe = Recipe(steps=[parse_quantize(precision)], backend=backend, threads=threads)
    else:
        recipe = Recipe(backend=backend, precision=precision, threads=threads)
    trial.apply_steps(handle, handle, trial.plan(recipe, handle.model), WORK)
    return trial.build(handle, recipe, max_cache_len=PROMPT + NEW)


def run_one(model: str, backend: str, precision: str, threads: int) -> dict:
    import resource

    from genfast.models.loading import load
    from genfast.profiling.hardware import memory_read_bandwidth
    from genfast.profiling.llm import profile_llm
    from genfast.profiling.workload import Workload

    torch.set_num_threads(threads)
    handle = load(model_dir(model))
    bandwidth = memory_read_bandwidth()
    if backend == "hf-generate":
        out = _generate_baseline(handle)
    else:
        start = time.perf_counter()
        runtime = build_case(handle, backend, precision, threads)
        build_s = time.perf_counter() - start
        r = profile_llm(handle, Workload(prompt_lens=[PROMPT], output_len=NEW, repeats=REPEATS, warmup=1),
                        runtime=runtime)
        case = r["cases"][0]
        out = {"ttft_s": case["ttft_s"]["median"], "decode_tokens_per_s": case["decode_tokens_per_s"]["median"],
               "e2e_s": case["e2e_s"]["median"], "weight_bytes_per_step": case["roofline"]["weight_bytes_per_step"],
               "build_s": build_s, "compile_time_s": r["runtime"]["compile_time_s"],
               "decode_forward_s": case["stages_s"]["decode_forward"]["median"],
               "sample_s": case["stages_s"]["sample"]["median"]}
    out["ceiling_tokens_per_s"] = bandwidth / out["weight_bytes_per_step"]
    out["roofline_fraction"] = out["decode_tokens_per_s"] / out["ceiling_tokens_per_s"]
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["bandwidth_gbs"] = bandwidth / 1e9
    return out


def measure(models: list[str], threads: int, cases: list[tuple[str, str]]) -> list[dict]:
    """Every case of every model, each in its own process."""
    results = []
    for model in models:
        model_dir(model)
        for backend, precision in cases:
            proc = subprocess.run([sys.executable, __file__, "--threads", str(threads), "--one", model, backend,
                                   precision], capture_output=True, text=True)
            if proc.returncode != 0:
                tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
                results.append({"model": model, "backend": backend, "precision": precision, "error": tail})
                print(f"{model} {backend} {precision}: FAILED {tail}", flush=True)
                continue
            row = {"model": model, "backend": backend, "precision": precision,
                   **json.loads(proc.stdout.strip().splitlines()[-1])}
            results.append(row)
            print(f"{model} {backend} {precision}: {row['decode_tokens_per_s']:.1f} tok/s, "
                  f"TTFT {row['ttft_s'] * 1e3:.1f} ms", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", nargs="+", default=["demo", "gpt2-small"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--render", action="store_true", help="rebuild the table from results/NAME.json")
    parser.add_argument("--cases", choices=("all", "core"), default="all",
                        help="core: generate(), torch fp32 / compiled / int8-weight, onnxruntime fp32, "
                             "openvino fp32 / int8")
    parser.add_argument("--name", default="runtimes", help="results/NAME.{json,md}")
    parser.add_argument("--one", nargs=3, metavar=("MODEL", "BACKEND", "PRECISION"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(*args.one, args.threads)))
        return

    if args.render:  # the table again from the last run's raw results, nothing re-measured
        results = json.loads((Path(__file__).parent / "results" / f"{args.name}.json").read_text())
        args.models = list(dict.fromkeys(r["model"] for r in results))
    else:
        results = measure(args.models, args.threads, CASES if args.cases == "all" else CORE_CASES)
    # every case measured the bandwidth in its own process and it moves between processes; one
    # figure (their median) for the whole table keeps the roofline column comparable between rows
    bw = statistics.median(r["bandwidth_gbs"] for r in results if "bandwidth_gbs" in r)
    for r in results:
        if "error" not in r:
            r["roofline_fraction"] = r["decode_tokens_per_s"] * r["weight_bytes_per_step"] / (bw * 1e9)

    lines = ["| model | backend | precision | TTFT ms | decode tok/s | vs generate() | peak RSS MiB | "
             "weights MB/step | % of roofline |", "|---|---|---|---|---|---|---|---|---|"]
    for model in args.models:
        base = next((r for r in results if r["model"] == model and r["backend"] == "hf-generate" and "error" not in r),
                    None)
        for r in (r for r in results if r["model"] == model):
            if "error" in r:
                lines.append(f"| {model} | {r['backend']} | {r['precision']} | failed: {r['error'][:80]} |||||||")
                continue
            speedup = f"{r['decode_tokens_per_s'] / base['decode_tokens_per_s']:.2f}x" if base else "-"
            lines.append(f"| {model} | {r['backend']} | {r['precision']} | {r['ttft_s'] * 1e3:.1f} | "
                         f"{r['decode_tokens_per_s']:.1f} | {speedup} | {r['peak_rss_mib']:.0f} | "
                         f"{r['weight_bytes_per_step'] / 1e6:.1f} | {r['roofline_fraction']:.0%} |")
    header = (f"{platform.processor() or platform.machine()}, {args.threads} threads, measured read bandwidth "
              f"{bw:.1f} GB/s (median over the cases' processes); prompt {PROMPT}, {NEW} new tokens, batch 1, medians of {REPEATS} runs after 1 "
              f"warm-up; command: `python benchmarks/runtimes.py {' '.join(sys.argv[1:])}`. Peak RSS includes the "
              f"transformers model every case loads first.")
    write_results(args.name, results, header, lines)


if __name__ == "__main__":
    main()
