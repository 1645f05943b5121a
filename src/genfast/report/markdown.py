"""A profile as a Markdown report with its plots."""

from __future__ import annotations

import json
from pathlib import Path

from genfast.report.plots import latency_distribution, stage_bars
from genfast.report.tables import LATENCY_HEADERS, STAGE_HEADERS, latency_rows, model_lines, stage_rows


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def write_profile_report(result: dict, directory: Path) -> Path:
    """Write ``report.md``, ``profile.json`` and two PNG plots into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    stage_bars(result, directory / "stages.png")
    latency_distribution(result, directory / "itl.png")
    (directory / "profile.json").write_text(json.dumps(result, indent=2))
    w = result["workload"]
    parts = [
        f"# genfast profile: {result['model']['source']}",
        "\n".join(f"- {line}" for line in model_lines(result)),
        f"Workload: {w['output_len']} new tokens (greedy, EOS ignored), {w['warmup']} warm-up + "
        f"{w['repeats']} counted runs per case, prompts drawn with seed {w['seed']}.",
        "## Latency (ms, medians unless named) and throughput",
        markdown_table(LATENCY_HEADERS, latency_rows(result)),
        "Roofline: decode tokens/s as a share of the ceiling set by reading every weight once per "
        "step at the measured memory bandwidth.",
        "## Stages (median ms per request)",
        markdown_table(STAGE_HEADERS, stage_rows(result)),
        "![stages](stages.png)\n\n![inter-token latency](itl.png)",
    ]
    if result["warnings"]:
        parts.append("## Warnings\n" + "\n".join(f"- {w}" for w in result["warnings"]))
    path = directory / "report.md"
    path.write_text("\n\n".join(parts) + "\n")
    return path
