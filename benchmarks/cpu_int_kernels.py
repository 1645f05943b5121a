"""PyTorch's own packed int8 / int4 CPU matmul kernels against fp32, at decode shape (one token).

    python benchmarks/cpu_int_kernels.py

8 stacked 1024x1024 weights, batch 1, 1 thread, 200 calls after warm-up. Writes
benchmarks/results/cpu_int_kernels.{json,md}.
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


def per_call_us(fn) -> float:
    with torch.inference_mode():
        for _ in range(5):
            fn()
        start = time.perf_counter()
        for _ in range(200):
            fn()
        return (time.perf_counter() - start) / 200 * 1e6


def main() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    weights = [torch.randn(N, K) for _ in range(8)]
    x = torch.randn(1, K)
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

    def chain(step):
        def run():
            y = x
            for item in step[1]:
                y = step[0](y, item)
            return y
        return run

    kernels = {
        "fp32 linear": chain((lambda y, w: torch.nn.functional.linear(y, w), weights)),
        "int8 _weight_int8pack_mm": chain((lambda y, qs: torch._weight_int8pack_mm(y, qs[0], qs[1]), int8)),
        "int4 _weight_int4pack_mm_for_cpu": chain(
            (lambda y, pz: torch._weight_int4pack_mm_for_cpu(y, pz[0], GROUP, pz[1]), int4)),
    }
    times = {name: per_call_us(fn) for name, fn in kernels.items()}
    base = times["fp32 linear"]
    rows = [[name, f"{us:.0f}", f"{us / base:.2f}x"] for name, us in times.items()]
    caption = (f"torch {torch.__version__}, {platform.machine()} CPU, 1 thread; 8 chained 1024x1024 weights, one "
               "token; command: `python benchmarks/cpu_int_kernels.py`.")
    write_results("cpu_int_kernels", times, caption, markdown_table(["kernel", "us per call", "time vs fp32"], rows))


if __name__ == "__main__":
    main()
