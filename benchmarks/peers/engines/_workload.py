"""What every engine runner shares (standard library only: each runs in its own peer's venv).

A runner prints one JSON line: the engine's TTFT and decode rate over the runs, and its peak RSS.
"""

from __future__ import annotations

import json
import random
import statistics
import sys
import time


def prompt_ids(length: int, vocab: int, seed: int = 0) -> list[int]:
    """The same prompt for every engine: ``length`` token ids drawn with ``seed``, avoiding the first 4."""
    rng = random.Random(seed)
    return [rng.randrange(4, min(vocab, 50000)) for _ in range(length)]


def prompts(batch: int, length: int, vocab: int) -> list[list[int]]:
    """``batch`` different prompts (seeds 0, 1, ...): the first is the batch-1 workload's."""
    return [prompt_ids(length, vocab, seed) for seed in range(batch)]


def workload_args(argv: list[str]) -> tuple[int, int, int, int, int]:
    """PROMPT NEW RUNS THREADS [BATCH] from a runner's command line (BATCH default 1)."""
    values = [int(v) for v in argv]
    return (*values[:4], values[4] if len(values) > 4 else 1)


def token_times(tokens) -> list[float]:
    """The moment each item of an iterable of new tokens arrived."""
    return [time.perf_counter() for _ in tokens]


def measure(run, runs: int, new_tokens: int, batch: int = 1) -> dict:
    """``run()`` generates once (``batch`` sequences together) and returns the moment each step's new
    tokens arrived; one warm-up, then ``runs`` timed runs: TTFT = first tokens - start, decode rate
    over the steps after it, counting every sequence's tokens."""
    ttfts, rates = [], []
    for i in range(runs + 1):
        start = time.perf_counter()
        times = run()
        if len(times) != new_tokens:
            raise SystemExit(f"the engine generated {len(times)} tokens, not {new_tokens}")
        if i:
            ttfts.append(times[0] - start)
            rates.append(batch * (len(times) - 1) / (times[-1] - times[0]))
    return {"ttft_s": statistics.median(ttfts), "decode_tok_s": statistics.median(rates),
            "ttft_runs_s": ttfts, "decode_runs_tok_s": rates,
            "peak_rss_bytes": peak_rss_bytes()}


def peak_rss_bytes() -> int:
    """This program's own peak RSS (VmHWM): getrusage's ru_maxrss keeps, across exec, the peak of the
    process that forked it (here the orchestrator, with torch loaded), so it reads that at least."""
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


def emit(result: dict) -> None:
    print(json.dumps(result))
    sys.stdout.flush()
