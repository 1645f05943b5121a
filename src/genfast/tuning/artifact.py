"""The servable artifact of a language model (the output directory checks are genfast.output_dir)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from genfast.compress.recipe import Recipe
from genfast.models.handle import ModelHandle


def write_artifact(handle: ModelHandle, recipe: Recipe, report: dict, out_dir: Path) -> Path:
    """Weights + tokenizer + generation config + recipe.json + report.{json,md} + plot."""
    from genfast.models.saving import save
    from genfast.report.optimize_report import write_optimize_report

    save(handle, out_dir, recipe)
    check_reloads(handle, out_dir)
    shutil.rmtree(out_dir / ".distill", ignore_errors=True)  # the resumable checkpoint is done with
    (out_dir / "report.json").write_text(json.dumps(report, indent=2))
    if "before" in report:
        write_optimize_report(report, out_dir)
    return out_dir


def check_reloads(handle: ModelHandle, out_dir: Path) -> None:
    """Load the artifact back and compare its logits with the model in memory on a few tokens, so a
    directory that does not reload is never reported as a result."""
    import torch

    from genfast.errors import ModelLoadError
    from genfast.models.loading import load_weights, read_recipe

    try:
        again = load_weights(out_dir, read_recipe(out_dir), handle.dtype).to(handle.device).eval()
    except Exception as exc:  # noqa: BLE001 - any failure to load is this artifact's failure
        raise ModelLoadError(f"The artifact written to {out_dir} does not load back: {exc}",
                             "Report this with the recipe; the directory is left marked incomplete.") from None
    ids = torch.arange(1, 9, device=handle.device)[None] % handle.model.config.vocab_size
    with torch.no_grad():
        expected, got = handle.model(ids).logits.float(), again(ids).logits.float()
    if not torch.allclose(expected, got, atol=1e-3, rtol=1e-3):
        raise ModelLoadError(f"The artifact written to {out_dir} loads back with different outputs "
                             f"(max logit difference {(expected - got).abs().max():.3g}).",
                             "Report this with the recipe; the directory is left marked incomplete.")
