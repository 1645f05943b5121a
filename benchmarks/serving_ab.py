"""`genfast serve` at this checkout against another git revision, same load, interleaved rounds.

    python benchmarks/serving_ab.py --base REV [--rounds 3] [--concurrency 1 16] [--requests 64] [--this-args "..."]

The base revision is checked out once into .genfast-work/ (git worktree) and its server runs from
there (PYTHONPATH); the load generator is this checkout's. Rounds alternate which server goes
first. Continuous batching, the demo model, 64-token prompts, 64 new tokens (EOS ignored).
Writes benchmarks/results/serving_ab.{json,md}.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import signal
import statistics
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _results import write_results  # noqa: E402
from serving_modes import start_server  # noqa: E402

from genfast.bench.loadgen import LoadConfig, PromptSource
from genfast.cli.bench_cmd import measure
from genfast.models.loading import load
from genfast.textdata import reference_text

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".genfast-work"


def checkout(rev: str) -> Path:
    """A worktree of ``rev`` (reused when it exists)."""
    sha = subprocess.run(["git", "rev-parse", "--short", rev], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout.strip()
    path = WORK / f"rev-{sha}"
    if not path.exists():
        subprocess.run(["git", "worktree", "add", "--detach", str(path), sha], cwd=ROOT, check=True,
                       capture_output=True)
    return path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", required=True, help="git revision to compare against")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--port", type=int, default=8124)
    parser.add_argument("--this-args", default="", help="extra `genfast serve` options for this checkout's server")
    args = parser.parse_args()

    base_src = checkout(args.base) / "src"
    prompts = PromptSource(reference_text(), load("demo").tokenizer)
    runs: list[dict] = []
    for rnd in range(args.rounds):
        order = [("this", None), ("base", base_src)]
        for name, src in order if rnd % 2 == 0 else order[::-1]:
            env = {**os.environ, **({"PYTHONPATH": str(src)} if src else {})}
            proc = start_server("demo", "continuous", args.port, max(args.concurrency), args.threads,
                                args.this_args.split() if src is None else [], env)
            try:
                for c in args.concurrency:
                    cfg = LoadConfig(url=f"http://127.0.0.1:{args.port}", concurrency=c, requests=args.requests,
                                     warmup_requests=4, prompt_tokens=64, max_tokens=64)
                    r = asyncio.run(measure(replace(cfg), prompts))
                    runs.append({"server": name, "round": rnd, "concurrency": c, **r})
                    print(f"round {rnd} {name} c={c}: {r['output_tokens_per_s']:.1f} tok/s, "
                          f"TTFT p50 {r['ttft_s']['p50'] * 1e3:.0f} ms", flush=True)
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=60)

    rows = ["| concurrency | server | output tok/s median (min-max) | TTFT p50 ms | TPOT p50 ms | this / base |",
            "|---|---|---|---|---|---|"]
    for c in args.concurrency:
        tps = {s: [r["output_tokens_per_s"] for r in runs if r["server"] == s and r["concurrency"] == c]
               for s in ("this", "base")}
        ratios = [t / b for t, b in zip(tps["this"], tps["base"], strict=True)]
        for s in ("this", "base"):
            mine = [r for r in runs if r["server"] == s and r["concurrency"] == c]
            ttft = statistics.median(r["ttft_s"]["p50"] for r in mine) * 1e3
            tpot = statistics.median(r["tpot_s"]["p50"] for r in mine) * 1e3
            ratio = f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f})" if s == "this" else ""
            rows.append(f"| {c} | {s} | {statistics.median(tps[s]):.1f} ({min(tps[s]):.1f}-{max(tps[s]):.1f}) | "
                        f"{ttft:.0f} | {tpot:.1f} | {ratio} |")
    header = (f"`genfast serve --model demo` at this checkout vs `{args.base}`; {args.rounds} interleaved rounds, "
              f"{args.requests} requests per level, 64-token prompts, 64 new tokens; "
              f"{platform.processor() or platform.machine()}, {args.threads} threads; command: "
              f"`python benchmarks/serving_ab.py {' '.join(sys.argv[1:])}`.")
    write_results("serving_ab", runs, header, rows)


if __name__ == "__main__":
    main()
