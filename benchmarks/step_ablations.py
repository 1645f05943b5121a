"""Same-process A/B of single changes to the decode step, in alternating rounds.

    python benchmarks/step_ablations.py [--rounds 12]

Both variants of a change are built in one process over the same model and timed on 120 greedy
decode steps after a 128-token prompt, batch 1, 2 threads; each round runs both, the order
swapped every round, so this shared machine's drift hits both alike. Changes measured:
- inductor's C++ wrapper for the compiled step (genfast's default on CPU) against the Python one,
  demo model, int8 weight-only and fp32, `torch-compile`;
- the decode step's layer stack as one native operator (genfast's default for int8 weight-only
  layers on CPU, kernels/decode_layer.py) against the per-op layers, GPT-2-small shape, `torch`.
(A vectorized argmax kernel for greedy sampling was measured here too and dropped for showing no
step gain; its numbers are in the commit that reverted it.) Writes benchmarks/results/step_ablations.{json,md}.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path
from unittest import mock

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _results import markdown_table, write_results  # noqa: E402
from runtimes import PROMPT, model_dir  # noqa: E402

THREADS, STEPS = 2, 120


def _handle(model: str, quantize: str | None):
    from genfast.compress import compress_
    from genfast.compress.recipe import parse_quantize, step_config
    from genfast.models.loading import load

    handle = load(model_dir(model))
    if quantize:
        compress_(handle, step_config(parse_quantize(quantize)))
    return handle


def step_seconds(runtime, ids: torch.Tensor) -> float:
    """Mean seconds per greedy decode step (forward + picking the next token) over STEPS steps."""
    from genfast.runtime.sampling import greedy

    _, cache = runtime.prefill(ids)
    token = torch.tensor([1])
    for _ in range(3):
        logits, cache = runtime.decode(token, cache)
        token = greedy(logits)
    start = time.perf_counter()
    for _ in range(STEPS):
        logits, cache = runtime.decode(token, cache)
        token = greedy(logits)
    return (time.perf_counter() - start) / STEPS


def cpp_wrapper_variants(quantize: str | None):
    from genfast.runtime import compiled

    model = _handle("demo", quantize).model
    with mock.patch.dict(compiled.CPU_OPTIONS, {"cpp_wrapper": False}):
        python = compiled.CompiledTorchRuntime(model, max_cache_len=PROMPT + STEPS + 8)
    cpp = compiled.CompiledTorchRuntime(model, max_cache_len=PROMPT + STEPS + 8)
    return f"demo {quantize or 'fp32'}", {"Python wrapper": python, "C++ wrapper (default)": cpp}


def layer_stack_variants():
    from genfast.runtime.convert import to_fast_decoder
    from genfast.runtime.torch_runtime import TorchRuntime

    model = _handle("gpt2-small", "int8-weight").model
    per_op, one_op = to_fast_decoder(model), to_fast_decoder(model)  # the same weights
    per_op.native_plans = None
    return "GPT-2-small int8-weight", {"per-op layers": TorchRuntime(per_op, max_cache_len=PROMPT + STEPS + 8),
                                       "one operator (default)": TorchRuntime(one_op, max_cache_len=PROMPT + STEPS + 8)}


ABLATIONS = {"compiled step's wrapper, int8 weights": lambda: cpp_wrapper_variants("int8-weight"),
             "compiled step's wrapper, fp32": lambda: cpp_wrapper_variants(None),
             "decode layer stack, torch runtime": layer_stack_variants}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=12)
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    ids = torch.randint(1, 8000, (1, PROMPT), generator=torch.Generator().manual_seed(0))
    raw, rows = {}, []
    for ablation, build in ABLATIONS.items():
        model, variants = build()
        for runtime in variants.values():
            step_seconds(runtime, ids)  # compile, warm up
        times = {name: [] for name in variants}
        for r in range(args.rounds):
            for name in (list(variants) if r % 2 == 0 else list(variants)[::-1]):
                times[name].append(step_seconds(variants[name], ids))
        raw[ablation] = {"model": model, "step_s": times}
        base, new = list(times)
        faster = sum(b < a for a, b in zip(times[base], times[new], strict=True))
        for name, t in times.items():
            rows.append([ablation, model, name, f"{statistics.median(t) * 1e3:.3f}", f"{min(t) * 1e3:.3f}",
                         f"{faster}/{args.rounds}" if name == new else ""])
        print(ablation, {n: round(statistics.median(t) * 1e3, 3) for n, t in times.items()}, flush=True)
    caption = (f"{platform.machine()}, {THREADS} threads; `torch-compile` unless the change names the runtime, "
               f"batch 1, prompt {PROMPT}, "
               f"{STEPS} greedy decode steps per timing; {args.rounds} rounds alternating the variants' order; "
               "command: `python benchmarks/step_ablations.py`.")
    write_results("step_ablations", raw, caption,
                  markdown_table(["change", "model", "variant", "step ms (median)", "step ms (min)",
                                  "rounds faster than the other"], rows))


if __name__ == "__main__":
    main()
