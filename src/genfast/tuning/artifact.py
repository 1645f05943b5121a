"""Where results are written: the output directory checks and the servable artifact."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from genfast.compress.recipe import Recipe
from genfast.errors import ConfigError
from genfast.models.handle import ModelHandle


def check_output_dir(out_dir: Path, source_path: Path, marker: str = "recipe.json") -> None:
    """Refuse to write into the original model's files or over a directory that is not ours
    (``marker``: the file a directory of ours holds)."""
    out, src = out_dir.resolve(), source_path.resolve()
    if out == src or src in out.parents:
        raise ConfigError(f"The output {out_dir} is inside the original model's directory {source_path}.",
                          "Choose another -o directory: the original files are never modified.")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out_dir} is a file, not a directory.", "Choose an empty or new -o directory.")
    if out.exists() and any(out.iterdir()) and not (out / marker).exists():
        raise ConfigError(f"{out_dir} exists, is not empty and is not a genfast artifact.",
                          "Choose an empty or new -o directory.")


def write_artifact(handle: ModelHandle, recipe: Recipe, report: dict, out_dir: Path) -> Path:
    """Weights + tokenizer + generation config + recipe.json + report.{json,md} + plot."""
    from genfast.models.saving import save
    from genfast.report.optimize_report import write_optimize_report

    save(handle, out_dir, recipe)
    shutil.rmtree(out_dir / ".distill", ignore_errors=True)  # the resumable checkpoint is done with
    (out_dir / "report.json").write_text(json.dumps(report, indent=2))
    if "before" in report:
        write_optimize_report(report, out_dir)
    return out_dir
