"""The before/after report of `genfast optimize`: a Markdown table and a PNG."""

from __future__ import annotations

from pathlib import Path

from genfast.report.markdown import markdown_table

# (label, key, unit scale, format, higher is better)
ROWS = [
    ("TTFT ms", "ttft_s", 1e3, "{:.1f}", False),
    ("TPOT ms", "tpot_s", 1e3, "{:.2f}", False),
    ("tokens/s", "tokens_per_s", 1, "{:.1f}", True),
    ("decode tokens/s", "decode_tokens_per_s", 1, "{:.1f}", True),
    ("parameters (M)", "parameters", 1e-6, "{:.2f}", False),
    ("weights read per step (MB)", "weight_bytes_per_step", 1e-6, "{:.1f}", False),
    ("peak RSS (MiB)", "peak_rss_bytes", 1 / 2**20, "{:.0f}", False),
    ("perplexity (held-out)", "perplexity", 1, "{:.2f}", False),
]


def _cell(value, scale: float, fmt: str) -> str:
    return "-" if value is None else fmt.format(value * scale)


def comparison_rows(report: dict) -> list[list[str]]:
    before, after = report["before"], report["after"]
    rows = []
    for label, key, scale, fmt, _ in ROWS:
        b, a = before.get(key), after.get(key)
        ratio = f"{a / b:.2f}x" if a is not None and b else "-"
        rows.append([label, _cell(b, scale, fmt), _cell(a, scale, fmt), ratio])
    q = report["quality"]
    rows.append(["top-1 agreement", "1", f"{q['top1_agreement']['value']:.3f}", "-"])
    rows.append(["greedy agreement", "1", f"{q['greedy']['agreement']['value']:.3f}", "-"])
    return rows


def _plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(10, 3.2))
    for ax, (label, key, scale) in zip(axes, [("decode tokens/s", "decode_tokens_per_s", 1),
                                              ("TTFT ms", "ttft_s", 1e3), ("perplexity", "perplexity", 1)]):
        values = [(report[s].get(key) or 0) * scale for s in ("before", "after")]
        ax.bar(["before", "after"], values, color=["#888888", "#2a7ab9"])
        ax.set_title(label)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_optimize_report(report: dict, directory: Path) -> Path:
    _plot(report, directory / "before_after.png")
    budget = report["quality"]["budget"]
    verdict = "PASS: inside the quality budget" if budget["passed"] else "FAIL: " + "; ".join(budget["failures"])
    change = report["quality"]["perplexity"]["relative_change"]
    steps = ", ".join(s["technique"] for s in report["recipe"]["steps"]) or "none"
    text = "\n\n".join([
        f"# genfast optimize: {report['source']}",
        f"Steps: {steps}; backend {report['recipe']['backend']} ({report['recipe']['precision']}). "
        f"Before: torch fp32. Both profiled in the same run.",
        markdown_table(["", "before", "after", "after / before"], comparison_rows(report)),
        f"Perplexity change {change['value']:+.2%} (95% CI {change['ci95'][0]:+.2%} .. {change['ci95'][1]:+.2%}). "
        f"**{verdict}**.",
        "![before and after](before_after.png)",
    ])
    path = directory / "report.md"
    path.write_text(text + "\n")
    return path
