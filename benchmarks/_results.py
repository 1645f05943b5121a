"""Where every benchmark writes: benchmarks/results/NAME.json (raw) and NAME.md (caption + table)."""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def markdown_table(headers: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers), *("| " + " | ".join(r) + " |" for r in rows)]


def write_results(name: str, raw, caption: str, table: list[str]) -> None:
    """Write the raw results and the captioned Markdown table, and print the table."""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(raw, indent=2))
    (RESULTS / f"{name}.md").write_text(caption + "\n\n" + "\n".join(table) + "\n")
    print("\n".join(table))
