"""Continuous vs request-level dynamic vs one-at-a-time batching, measured in one run.

    python benchmarks/serving_modes.py [--model demo] [--concurrency 16] [--requests 64]

Starts `genfast serve` once per mode (same model, limits and threads), drives it with the same
load (64-token prompts, 64 new tokens, EOS ignored) and writes
benchmarks/results/serving_modes.{json,md}.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from _results import write_results  # noqa: E402

from genfast.bench.loadgen import LoadConfig, PromptSource
from genfast.cli.bench_cmd import measure
from genfast.models.loading import load
from genfast.textdata import reference_text

MODES = ("sequential", "dynamic", "continuous")


def start_server(model: str, mode: str, port: int, max_running: int, threads: int, extra: list[str] | None = None,
                 env: dict | None = None) -> subprocess.Popen:
    """`genfast serve` in its own process, returned once /health answers 200."""
    proc = subprocess.Popen([sys.executable, "-m", "genfast.cli.main", "serve", "--model", model, "--mode", mode,
                             "--port", str(port), "--max-running", str(max_running), "--max-queued", "256",
                             "--threads", str(threads), *(extra or [])], stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError(f"server for mode {mode} did not start")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="demo")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--prompt-tokens", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--port", type=int, default=8123)
    args = parser.parse_args()

    prompts = PromptSource(reference_text(), load(args.model).tokenizer)
    base = LoadConfig(url=f"http://127.0.0.1:{args.port}", model=args.model, concurrency=args.concurrency,
                      requests=args.requests, warmup_requests=4, prompt_tokens=args.prompt_tokens,
                      max_tokens=args.max_tokens)
    runs = {}
    for mode in MODES:
        proc = start_server(args.model, mode, args.port, args.concurrency, args.threads)
        try:
            runs[mode] = asyncio.run(measure(replace(base), prompts))
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
        print(f"{mode}: {runs[mode]['output_tokens_per_s']:.1f} output tok/s, "
              f"p99 TTFT {runs[mode]['ttft_s']['p99'] * 1e3:.0f} ms", flush=True)

    seq = runs["sequential"]["output_tokens_per_s"]
    rows = ["| mode | ok/sent | output tok/s | vs sequential | TTFT p50 ms | TTFT p99 ms | TPOT p50 ms | "
            "E2E p50 ms | E2E p99 ms |", "|---|---|---|---|---|---|---|---|---|"]
    for mode, r in runs.items():
        rows.append(f"| {mode} | {r['requests']['ok']}/{r['requests']['sent']} | {r['output_tokens_per_s']:.1f} | "
                    f"{r['output_tokens_per_s'] / seq:.2f}x | {r['ttft_s']['p50'] * 1e3:.0f} | "
                    f"{r['ttft_s']['p99'] * 1e3:.0f} | {r['tpot_s']['p50'] * 1e3:.1f} | "
                    f"{r['e2e_s']['p50'] * 1e3:.0f} | {r['e2e_s']['p99'] * 1e3:.0f} |")
    machine = f"{platform.processor() or platform.machine()}, {args.threads} threads"
    header = (f"Model `{args.model}`, {args.concurrency} concurrent streams, {args.requests} requests per mode, "
              f"{args.prompt_tokens}-token prompts, {args.max_tokens} new tokens (EOS ignored); {machine}; "
              f"command: `python benchmarks/serving_modes.py`.")
    write_results("serving_modes", {"args": vars(args), "runs": runs}, header, rows)


if __name__ == "__main__":
    main()
