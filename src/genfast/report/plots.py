"""PNG plots of a profile: where the time goes, and how latency is distributed."""

from __future__ import annotations

from pathlib import Path

from genfast.profiling.timer import STAGES


def pyplot():
    """matplotlib's pyplot drawing to files only, never a window."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path) -> Path:
    """Lay out, write as PNG and close ``fig``."""
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    pyplot().close(fig)
    return path


def stage_bars(result: dict, path: Path) -> Path:
    """Stacked bars: median time of each stage for every (prompt, batch) case."""
    plt = pyplot()
    cases = result["cases"]
    labels = [f"p{c['prompt_len']}\nb{c['batch_size']}" for c in cases]
    fig, ax = plt.subplots(figsize=(max(4, 1.2 * len(cases) + 2), 4))
    bottom = [0.0] * len(cases)
    for stage in STAGES:
        heights = [c["stages_s"][stage]["median"] * 1e3 for c in cases]
        ax.bar(labels, heights, bottom=bottom, label=stage)
        bottom = [b + h for b, h in zip(bottom, heights)]
    ax.set_ylabel("median time per request (ms)")
    ax.set_title(f"Where the time goes: {result['model']['source']}")
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def latency_distribution(result: dict, path: Path) -> Path:
    """Histogram of inter-token latency (every decode step of every counted run) per case."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for c in result["cases"]:
        samples = [x * 1e3 for x in c.get("itl_samples_s") or []]
        if samples:
            ax.hist(samples, bins=40, alpha=0.5, label=f"prompt {c['prompt_len']}, batch {c['batch_size']}")
    ax.set_xlabel("inter-token latency (ms)")
    ax.set_ylabel("decode steps")
    ax.set_title("Inter-token latency distribution")
    ax.legend(fontsize=8)
    return save_figure(fig, path)
