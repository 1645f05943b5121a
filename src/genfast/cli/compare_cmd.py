"""``genfast compare``: check a candidate model against its reference with a quality budget."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.progress import Progress
from rich.table import Table

from genfast.cli.common import BUDGET_FAILED_EXIT, console, err_console, quiet_libraries, set_threads


def _ci(est: dict, pct: bool = False) -> str:
    fmt = (lambda x: f"{x:+.2%}") if pct else (lambda x: f"{x:.4g}")
    return f"{fmt(est['value'])}  [{fmt(est['ci95'][0])}, {fmt(est['ci95'][1])}]"


def _print(result: dict) -> None:
    ppl = result["perplexity"]
    table = Table(title=f"Candidate vs reference on {result['windows']} held-out windows (95% bootstrap CI)")
    table.add_column("figure")
    table.add_column("value  [95% CI]", justify="right")
    table.add_row("perplexity, reference", _ci(ppl["reference"]))
    table.add_row("perplexity, candidate", _ci(ppl["candidate"]))
    table.add_row("perplexity change", _ci(ppl["relative_change"], pct=True)
                  + ("" if ppl["significant"] else "  (within noise)"))
    table.add_row("next-token KL (nats)", _ci(result["kl"]))
    table.add_row("top-1 agreement", _ci(result["top1_agreement"]))
    g = result["greedy"]
    table.add_row("greedy agreement", _ci(g["agreement"]))
    table.add_row("prompts identical / median first divergence",
                  f"{g['identical_prompts']}/{len(g['first_divergence'])} / {g['median_first_divergence'] or '-'}")
    console.print(table)
    b = result["budget"]
    if b["passed"]:
        console.print("[green]PASS[/]: inside the quality budget")
    else:
        console.print("[red]FAIL[/]: " + "; ".join(b["failures"]))


def read_text(path: Path) -> str:
    """A UTF-8 text file's contents; DataError naming the file otherwise."""
    from genfast.errors import DataError

    data = path.read_bytes()
    if b"\0" in data:
        raise DataError(f"{path} is a binary file, not text.", "Pass a UTF-8 text file with --text.")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not UTF-8 text (byte {exc.start}: {data[exc.start:exc.start + 1]!r}).",
                        f"Convert it first, e.g. iconv -f latin1 -t utf-8 {path}.") from None


def compare(
    candidate: str = typer.Option(..., help="The optimised model: a directory or `demo`."),
    reference: str = typer.Option("demo", help="The original model: a directory or `demo`."),
    text: Path | None = typer.Option(None, exists=True, dir_okay=False, help="Held-out UTF-8 text file (default: "
                                                                            "the demo's held-out code)."),
    window: int = typer.Option(128, help="Tokens per perplexity window."),
    max_windows: int = typer.Option(64, help="At most this many windows."),
    prompts: int = typer.Option(16, help="Prompts for greedy agreement."),
    new_tokens: int = typer.Option(32, help="Greedy tokens per prompt."),
    max_ppl_increase: str | None = typer.Option("2%", help="e.g. 2% or 0.02."),
    min_top1_agreement: str | None = typer.Option(None, help="e.g. 0.95."),
    max_kl: str | None = typer.Option(None, help="Mean KL in nats, e.g. 0.05."),
    min_greedy_agreement: str | None = typer.Option(None, help="e.g. 0.9."),
    threads: int | None = typer.Option(None),
    as_json: bool = typer.Option(False, "--json"),
    images: int = typer.Option(100, help="Image generators: images drawn by each model (labels cycle 0-9)."),
    min_class_agreement: str | None = typer.Option(None, help="Image generators: default 0.9."),
    max_fd_increase: str | None = typer.Option(None, help="Image generators: relative, default 50%."),
    min_psnr: str | None = typer.Option(None, help="Image generators: dB against the reference's image (off by "
                                                   "default: another sampler draws other images)."),
    grid: Path | None = typer.Option(None, help="Image generators: write a side-by-side PNG here."),
) -> None:
    """Perplexity, KL, top-1 and greedy agreement with confidence intervals; for image generators
    PSNR, SSIM, classifier agreement and Fréchet distance; exit 3 if over budget."""
    from genfast.images.source import is_image_model

    if is_image_model(candidate) or is_image_model(reference):
        from genfast.cli.image_cmds import compare_image, image_budget

        set_threads(threads)
        if not compare_image(reference if is_image_model(reference) else "demo-image", candidate, images,
                             image_budget(min_class_agreement, max_fd_increase, min_psnr), grid, threads, as_json):
            sys.exit(BUDGET_FAILED_EXIT)
        return
    from genfast.models.loading import load
    from genfast.quality.budget import QualityBudget
    from genfast.quality.compare import QualitySettings
    from genfast.quality.compare import compare as run_compare

    quiet_libraries()
    set_threads(threads)
    budget = QualityBudget.parse(max_ppl_increase, min_top1_agreement, max_kl, min_greedy_agreement)
    settings = QualitySettings(window=window, max_windows=max_windows, prompts=prompts, new_tokens=new_tokens)
    settings.validate()
    ref, cand = load(reference), load(candidate)
    with Progress(console=err_console, transient=True, disable=as_json) as bar:
        task = bar.add_task("comparing", total=None)
        result = run_compare(ref, cand, ref.tokenizer, text=read_text(text) if text else None, settings=settings,
                             budget=budget, on_progress=lambda done, total: bar.update(task, completed=done,
                                                                                     total=total))
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        _print(result)
    if not result["budget"]["passed"]:
        sys.exit(BUDGET_FAILED_EXIT)
