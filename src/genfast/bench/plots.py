"""Latency and throughput against offered load."""

from __future__ import annotations

from pathlib import Path


def latency_vs_load(runs: list[dict], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cfgs = [r["config"] for r in runs]
    by_rate = cfgs[0]["rate"] is not None
    x = [c["rate"] if by_rate else c["concurrency"] for c in cfgs]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for key, ax, title in (("ttft_s", axes[0], "TTFT"), ("tpot_s", axes[1], "TPOT")):
        for pct in ("p50", "p99"):
            ax.plot(x, [(r[key] or {}).get(pct, float("nan")) * 1e3 for r in runs], marker="o", label=pct)
        ax.set_title(f"{title} (ms)")
        ax.legend()
    axes[2].plot(x, [r["output_tokens_per_s"] for r in runs], marker="o", label="output tok/s")
    axes[2].plot(x, [r["goodput"]["requests_per_s"] for r in runs], marker="s", label="goodput req/s")
    axes[2].set_title("throughput")
    axes[2].legend()
    for ax in axes:
        ax.set_xlabel("arrival rate (req/s)" if by_rate else "concurrent streams")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
