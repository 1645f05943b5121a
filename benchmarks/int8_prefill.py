"""Prompt products of int8 and int4 weights: genfast's kernels against PyTorch's.

    python benchmarks/int8_prefill.py

GPT-2-small's two projection shapes (2304 x 768, 768 x 3072), 1 to 512 activation rows, 2 threads,
the same weights in each kernel's own packed form (int4: groups of 32, its product and its prompt path,
the weights dequantized to bf16 for PyTorch's bf16 GEMM); rounds interleaved (every kernel once per round),
median and min-max over the rounds of each round's median of 20 calls. Then a whole prefill
(128 tokens, batch 1) of a random GPT-2-small on genfast's decoder: fp32, int8-dynamic (fbgemm),
int8-weight. Writes benchmarks/results/int8_prefill.{json,md}.
"""

from __future__ import annotations

import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _results import markdown_table, write_results  # noqa: E402

THREADS, ROUNDS, CALLS = 2, 5, 20
SHAPES = [(2304, 768), (768, 3072)]
ROWS = [1, 32, 128, 512]


def per_call_ms(fn) -> float:
    with torch.inference_mode():
        for _ in range(3):
            fn()
        times = []
        for _ in range(CALLS):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def kernels(n: int, k: int) -> dict:
    from genfast.compress.quantize.dynamic_int8 import DynamicInt8Linear
    from genfast.compress.quantize.int8_weight import quantize_per_channel
    from genfast.kernels import int8_gemv as g

    dense = torch.nn.Linear(k, n, bias=False)
    q, scale = quantize_per_channel(dense.weight.detach())
    packed = g.pack(q)
    padded_scale, sums = g.pad_rows(scale, packed), g.row_sums(q, packed)
    dynamic = DynamicInt8Linear.from_dense(dense)
    bf16_scale = scale.bfloat16()
    weight = dense.weight.detach()
    from genfast.compress.quantize.int4_weight import Int4WeightOnlyLinear
    from genfast.kernels import int4_gemv as g4

    int4 = Int4WeightOnlyLinear.from_dense(dense, 32)
    packed4, (scale2, minimum) = int4.kernel_packed, int4.kernel_views

    def int4_via_bf16(x):
        return x.bfloat16() @ torch.ops.genfast.int4_dequantize(packed4, scale2, minimum, 32)[:n].T

    return {
        "fp32 matmul": lambda x: x @ weight.T,
        "PyTorch int8 (bf16 act.)": lambda x: torch._weight_int8pack_mm(x.bfloat16(), q, bf16_scale),
        "fbgemm dynamic int8": lambda x: dynamic(x),
        "genfast int16 act.": lambda x: g.int8_gemv(x, packed, padded_scale, None, n),
        "genfast 8-bit act.": lambda x: g.int8_gemm(x, packed, padded_scale, sums, None, n),
        "genfast int4 product (g32)": lambda x: g4.int4_gemv(x, packed4, scale2, minimum, None, 32, n),
        "genfast int4 -> bf16 GEMM (g32)": int4_via_bf16,
    }


def prefill_runtimes() -> dict:
    from transformers import AutoModelForCausalLM, GPT2Config

    from genfast.compress import compress_
    from genfast.compress.quantize import DynamicInt8, Int8WeightOnly
    from genfast.runtime.torch_runtime import TorchRuntime

    config = GPT2Config(vocab_size=50257, n_embd=768, n_layer=12, n_head=12, n_positions=1024)
    runtimes = {}
    for name, step in (("fp32", None), ("int8-dynamic", DynamicInt8()), ("int8-weight", Int8WeightOnly())):
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(config).eval()
        if step is not None:
            compress_(model, step)
        runtimes[name] = TorchRuntime(model, max_cache_len=160)
    return runtimes


def main() -> None:
    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    cases = {(n, k): kernels(n, k) for n, k in SHAPES}
    inputs = {(k, m): torch.randn(m, k) for _, k in SHAPES for m in ROWS}
    runtimes = prefill_runtimes()
    prompt = torch.randint(0, 50257, (1, 128))
    kernel_ms: dict = {}
    prefill_ms: dict = {name: [] for name in runtimes}
    for _ in range(ROUNDS):
        for (n, k), fns in cases.items():
            for m in ROWS:
                for name, fn in fns.items():
                    x = inputs[k, m]
                    kernel_ms.setdefault(f"{n}x{k}|{m}|{name}", []).append(per_call_ms(lambda f=fn, x=x: f(x)))
        for name, runtime in runtimes.items():
            with torch.inference_mode():
                runtime.prefill(prompt)
                times = []
                for _ in range(5):
                    start = time.perf_counter()
                    runtime.prefill(prompt)
                    times.append(time.perf_counter() - start)
            prefill_ms[name].append(statistics.median(times) * 1e3)

    def cell(values: list[float]) -> str:
        return f"{statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})"

    names = list(next(iter(cases.values())))
    rows = [[f"{n} x {k}", str(m), *(cell(kernel_ms[f"{n}x{k}|{m}|{name}"]) for name in names)]
            for n, k in SHAPES for m in ROWS]
    table = markdown_table(["weight (out x in)", "rows", *(f"{name} ms" for name in names)], rows)
    table += ["", *markdown_table(["GPT-2-small prefill, 128 tokens", "ms"],
                                  [[name, cell(v)] for name, v in prefill_ms.items()])]
    caption = (f"Int8 prompt products, {THREADS} threads, {platform.processor() or platform.machine()}, "
               f"torch {torch.__version__}; median (min-max) of {ROUNDS} interleaved rounds, each the median "
               f"of {CALLS} calls (5 prefills). `python benchmarks/int8_prefill.py`.")
    write_results("int8_prefill", {"kernel_ms": kernel_ms, "prefill_ms": prefill_ms}, caption, table)


if __name__ == "__main__":
    main()
