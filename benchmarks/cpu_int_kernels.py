"""PyTorch's CPU matmul kernels (fp32, bf16, packed int8 / int4) and genfast's GEMVs (int8, int4, fp32), at decode shape.

    python benchmarks/cpu_int_kernels.py

64 chained 1024x1024 weights (256 MB in fp32, so no format fits in the cache), 2 threads, 50 calls
after warm-up; activations in fp32 or bf16; one token, then 1-256 rows for the two int8 kernels
(genfast's int16-activation product against PyTorch's; from int8_gemv.GEMM_MIN_ROWS rows the layers
switch to the 8-bit-activation product that benchmarks/int8_prefill.py measures).
Writes benchmarks/results/cpu_int_kernels.{json,md}.
"""

from __future__ import annotations

import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _results import markdown_table, write_results  # noqa: E402

N = K = 1024
GROUP = 32
LAYERS = 64
THREADS = 2


def per_call_us(fn) -> float:
    with torch.inference_mode():
        for _ in range(5):
            fn()
        start = time.perf_counter()
        for _ in range(50):
            fn()
        return (time.perf_counter() - start) / 50 * 1e6


def main() -> None:
    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    weights = [torch.randn(N, K) for _ in range(LAYERS)]
    x = torch.randn(1, K)
    xb = x.bfloat16()
    int8 = []
    for w in weights:  # symmetric per output channel
        scale = w.abs().amax(1) / 127
        int8.append(((w / scale[:, None]).round().clamp(-128, 127).to(torch.int8), scale))
    int4 = []
    for w in weights:  # asymmetric groups of 32, tinygemm layout: w = (q - 8) * scale + zero
        groups = w.view(N, K // GROUP, GROUP)
        low, high = groups.amin(-1, keepdim=True), groups.amax(-1, keepdim=True)
        scale = (high - low).clamp(min=1e-6) / 15
        q = ((groups - low) / scale).round().clamp(0, 15).to(torch.int32).view(N, K)
        zeros = low + 8 * scale
        scales_zeros = torch.stack([scale.view(N, -1).t(), zeros.view(N, -1).t()], dim=-1).contiguous()
        int4.append((torch._convert_weight_to_int4pack_for_cpu(q, 1), scales_zeros))

    bf16 = [w.bfloat16() for w in weights]
    int8_b = [(q, scale.bfloat16()) for q, scale in int8]
    int4_b = [(packed, sz.bfloat16()) for packed, sz in int4]

    def chain(first, op, items):
        def run():
            y = first
            for item in items:
                y = op(y, item)
            return y
        return run

    def int8_mm(y, qs):
        return torch._weight_int8pack_mm(y, qs[0], qs[1])

    def int4_mm(y, pz):
        return torch._weight_int4pack_mm_for_cpu(y, pz[0], GROUP, pz[1])

    from genfast.compress.quantize.int8_weight import Int8WeightOnlyLinear
    from genfast.kernels import int4_gemv, int8_gemv

    gemv_layers = [Int8WeightOnlyLinear(q, scale, None) for q, scale in int8]

    def gemv(y, layer):
        return int8_gemv.int8_gemv(y, layer.gemv_weight, layer.gemv_scale, None, N)

    from genfast.compress.quantize.int4_weight import Int4WeightOnlyLinear

    def int4_layers(group: int) -> list:
        layers = []
        for w in weights:
            dense = torch.nn.Linear(K, N, bias=False)
            dense.weight.data = w
            layers.append(Int4WeightOnlyLinear.from_dense(dense, group))
        return layers

    def int4_bytes(layer) -> int:  # nibbles, bf16 scales and minimums, as the kernel holds them
        return layer.kernel_packed.numel() + 2 * layer.kernel_groups.numel()

    genfast_int4 = {group: int4_layers(group) for group in (GROUP, 128)}

    def gemv4(y, layer):  # the kernel itself, as gemv() calls the int8 one
        return int4_gemv.int4_gemv(y, layer.kernel_packed, *layer.kernel_views, None, layer.group_size, N)

    kernels = {  # name -> (run, weight bytes read per call)
        "fp32 linear": (chain(x, torch.nn.functional.linear, weights), 4 * N * K),
        "fp32 genfast fp32_gemv": (chain(x, lambda y, w: torch.ops.genfast.fp32_gemv(y, w, None), weights), 4 * N * K),
        "bf16 linear": (chain(xb, torch.nn.functional.linear, bf16), 2 * N * K),
        "int8 _weight_int8pack_mm, fp32 activations": (chain(x, int8_mm, int8), N * K),
        "int8 _weight_int8pack_mm, bf16 activations": (chain(xb, int8_mm, int8_b), N * K),
        "int8 genfast int8_gemv, fp32 in (int16 inside)": (chain(x, gemv, gemv_layers), N * K),
        "int4 _weight_int4pack_mm_for_cpu, fp32 activations": (chain(x, int4_mm, int4), N * K // 2),
        "int4 _weight_int4pack_mm_for_cpu, bf16 activations": (chain(xb, int4_mm, int4_b), N * K // 2),
        **{f"int4 genfast int4_gemv, groups of {group}, fp32 in (int8 inside)":
           (chain(x, gemv4, layers), int4_bytes(layers[0])) for group, layers in genfast_int4.items()},
    }
    times = {name: per_call_us(run) for name, (run, _) in kernels.items()}
    base = times["fp32 linear"]
    rows = [[name, f"{us:.0f}", f"{us / base:.2f}x", f"{LAYERS * nbytes / (us * 1e3):.1f}"]
            for (name, (_, nbytes)), us in zip(kernels.items(), times.values())]
    by_rows = {}
    for m in (1, 2, 4, 8, 16, 32, 64, 128, 256):
        xm = torch.randn(m, K)
        by_rows[m] = {"pytorch bf16": per_call_us(chain(xm.bfloat16(), int8_mm, int8_b)),
                      "genfast": per_call_us(chain(xm, gemv, gemv_layers))}
    crossover = [[str(m), f"{t['pytorch bf16']:.0f}", f"{t['genfast']:.0f}", f"{t['pytorch bf16'] / t['genfast']:.2f}x"]
                 for m, t in by_rows.items()]
    caption = (f"torch {torch.__version__}, {platform.machine()} CPU, {THREADS} threads; {LAYERS} chained "
               f"{N}x{K} weights, one token; command: `python benchmarks/cpu_int_kernels.py`.")
    write_results("cpu_int_kernels", {"one_token_us": times, "int8_by_rows_us": by_rows}, caption,
                  markdown_table(["kernel", "us per call", "time vs fp32", "weight GB/s"], rows)
                  + ["", "int8 by activation rows (us per call of the chain):", ""]
                  + markdown_table(["rows", "_weight_int8pack_mm bf16", "genfast int8_gemv", "genfast speed-up"],
                                   crossover))


if __name__ == "__main__":
    main()
