"""Choosing from measured trials: the Pareto front, a paired comparison with a CI, a one-line diagnosis."""

from __future__ import annotations

import math

from genfast.quality.stats import bootstrap


def better(a: float, b: float, higher_is_better: bool) -> bool:
    return a > b if higher_is_better else a < b


def pareto_front(points: list[tuple[str, float, float]], higher_is_better: bool) -> list[str]:
    """Keys of the points (key, speed metric, quality change) that no other point beats on both axes
    (quality change: lower is better)."""
    front = []
    for key, speed, change in points:
        dominated = any((better(s, speed, higher_is_better) or s == speed) and c <= change
                        and (s != speed or c != change) for k, s, c in points if k != key)
        if not dominated:
            front.append(key)
    return front


def paired_speedup(fast: list[float], slow: list[float], higher_is_better: bool, seed: int = 0) -> dict:
    """How many times faster ``fast`` is than ``slow``, from per-round values measured in the same
    rounds: the geometric mean of the per-round ratios with a bootstrap 95 % CI over rounds."""
    n = min(len(fast), len(slow))
    logs = [math.log(f / s if higher_is_better else s / f) for f, s in zip(fast[:n], slow[:n], strict=True)]
    est = bootstrap(lambda i: math.exp(sum(logs[j] for j in i) / len(i)), n, resamples=2000, seed=seed)
    return {"ratio": est.value, "ci95": [est.low, est.high], "rounds": n, "tie": est.low <= 1.0 <= est.high}


def diagnosis(record: dict, reference: dict | None, decode_bound: bool = True) -> str | None:
    """Why a candidate did not beat ``reference`` (genfast's plain fp32 engine), in one line; None if it did.

    ``decode_bound``: the objective times decode steps (latency), so bytes per step and the roofline
    explain it; for ttft and throughput only failures, fallbacks and the ratio are said."""
    if record["status"] == "failed":
        error = record.get("error", "")
        kind = "compile failure" if "compile" in error.lower() or record["recipe"]["backend"] == "torch-compile" \
            else "failed"
        return f"{kind}: {error}"
    if record["status"] != "timed" or not reference or record is reference or record["baseline"]:
        return None
    speed = record["speedup_vs_reference"]
    if speed is None or speed > 1.05:
        return None
    fallbacks = [w for w in record.get("build", {}).get("warnings", []) if "instead" in w or "eager" in w]
    if fallbacks:
        return f"kernel fallback: {fallbacks[0]}"
    timing = record["screen"]
    if not decode_bound:
        return _slower_or_same(speed)
    if (timing.get("tokenize_share") or 0) > 0.2:
        return f"tokenizer-bound: tokenizing is {timing['tokenize_share']:.0%} of the request"
    ref = reference["build"]["weight_bytes_per_step"]
    mine = record["build"]["weight_bytes_per_step"]
    roofline = timing.get("roofline_fraction")
    if mine >= 0.9 * ref:
        return (f"reads as many weight bytes per step as fp32 ({mine / 1e6:.1f} MB): a bandwidth-bound decode "
                "has nothing to gain")
    if roofline is not None and roofline < 0.3:
        return (f"overhead-bound: {roofline:.0%} of its bandwidth roofline; the step's time goes to compute "
                "(unpacking, conversions) and dispatch, not to reading weights")
    return _slower_or_same(speed)


def _slower_or_same(speed: float) -> str:
    if speed < 0.95:
        return f"slower than genfast's plain fp32 engine ({speed:.2f}x)"
    return f"about the same as genfast's plain fp32 engine ({speed:.2f}x)"
