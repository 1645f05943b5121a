"""The `genfast optimize` recipes the README quotes, on the demo model, one after another.

    python benchmarks/optimize_recipes.py

Each recipe is one `genfast.tuning.optimize.optimize()` call (the same as `genfast optimize`):
torch fp32 before and the optimised runtime after, profiled in the same call (128-token prompt,
64 new tokens, 3 runs), quality against the original on the shipped held-out text. Writes
benchmarks/results/optimize_recipes.{json,md}; artifacts go to .genfast-work/optimize/.
"""

from __future__ import annotations

import platform
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _results import markdown_table, write_results  # noqa: E402

from genfast.tuning.optimize import optimize  # noqa: E402
from genfast.compress.recipe import Recipe, parse_prune  # noqa: E402
from genfast.quality.budget import QualityBudget  # noqa: E402

PRUNE = [parse_prune("ffn=0.25"), parse_prune("heads=0.25")]
RECIPES = [  # (label, recipe, ppl budget)
    ("--backend onnxruntime --precision int8", Recipe(backend="onnxruntime", precision="int8"), "2%"),
    ("--backend openvino --precision int4", Recipe(backend="openvino", precision="int4"), "5%"),
    ("--prune ffn=0.25 --prune heads=0.25", Recipe(steps=list(PRUNE)), "10%"),
    ("--prune ffn=0.25 --prune heads=0.25 --distill 300",
     Recipe(steps=[*PRUNE, {"technique": "Distill", "steps": 300}]), "10%"),
]


def main() -> None:
    torch.set_num_threads(2)
    raw, rows = [], []
    for i, (label, recipe, ppl_budget) in enumerate(RECIPES):
        print(label, flush=True)
        report = optimize("demo", recipe, Path(f".genfast-work/optimize/{i}"), budget=QualityBudget.parse(ppl_budget),
                          threads=2, log=lambda msg: print(" ", msg, flush=True))
        before, after, q = report["before"], report["after"], report["quality"]
        report.pop("profiles")
        raw.append({"label": label, **report})
        change = q["perplexity"]["relative_change"]["value"]
        rows.append([f"`{label}`", f"{after['decode_tokens_per_s'] / before['decode_tokens_per_s']:.2f}x "
                     f"({before['decode_tokens_per_s']:.0f} -> {after['decode_tokens_per_s']:.0f})",
                     f"{before['weight_bytes_per_step'] / 1e6:.1f} -> {after['weight_bytes_per_step'] / 1e6:.1f} MB",
                     f"{before['perplexity']:.2f} -> {after['perplexity']:.2f} ({change:+.1%})",
                     f"{q['top1_agreement']['value']:.3f}",
                     f"{ppl_budget}: {'PASS' if q['budget']['passed'] else 'FAIL'}"])
    caption = (f"Demo model, {platform.machine()} CPU, 2 threads; baseline torch fp32 profiled in the same "
               "`optimize` call; command: `python benchmarks/optimize_recipes.py`.")
    write_results("optimize_recipes", raw, caption, markdown_table(
        ["recipe", "decode tok/s vs fp32", "weights read / step", "held-out perplexity", "top-1 agreement",
         "budget"], rows))


if __name__ == "__main__":
    main()
