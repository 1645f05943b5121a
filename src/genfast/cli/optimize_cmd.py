"""``genfast optimize``: apply compression steps and a backend, verify, profile, write the artifact."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.table import Table

from genfast.cli.common import BUDGET_FAILED_EXIT, console, err_console, quiet_libraries, set_threads


def optimize(
    model: str = typer.Option("demo", help="`demo` or a model directory (never modified)."),
    out: Path = typer.Option(..., "--out", "-o", help="Artifact directory to write."),
    prune: list[str] = typer.Option([], help="KIND=AMOUNT, repeatable, in order: unstructured=0.5, ffn=0.25, "
                                             "heads=0.25, layers=1."),
    distill: int = typer.Option(0, help="After the pruning steps, heal with this many distillation steps "
                                        "(teacher: the original model)."),
    quantize: str | None = typer.Option(None, help="Last step, in PyTorch (torch backends): int8-weight, int4-weight, "
                                                   "int8-dynamic, fp16, bf16."),
    group_size: int | None = typer.Option(None, help="Group size of --quantize int4-weight: 32, 64, 128, 256."),
    backend: str | None = typer.Option(None, help="Runtime of the result: torch, torch-compile, onnxruntime, openvino."),
    precision: str | None = typer.Option(None, help="The backend's own quantization: int8 (onnxruntime, "
                                                    "openvino); int4 (openvino)."),
    recipe: Path | None = typer.Option(None, help="A recipe file, YAML or JSON (steps, backend, precision), instead of flags."),
    max_ppl_increase: str | None = typer.Option("2%", help="Quality budget, e.g. 2% or 0.02."),
    min_top1_agreement: str | None = typer.Option(None, help="e.g. 0.95."),
    max_kl: str | None = typer.Option(None),
    min_greedy_agreement: str | None = typer.Option(None),
    prompt_len: int = typer.Option(128, help="Profiling prompt length."),
    new_tokens: int = typer.Option(64, help="Profiling output length."),
    repeats: int = typer.Option(3),
    threads: int | None = typer.Option(None),
    sampler: str | None = typer.Option(None, help="Image generators: ddpm, ddim or dpm-solver."),
    steps: int | None = typer.Option(None, help="Image generators: denoising steps."),
    min_class_agreement: str | None = typer.Option(None, help="Image generators: default 0.9."),
    max_fd_increase: str | None = typer.Option(None, help="Image generators: relative, default 50%."),
    min_psnr: str | None = typer.Option(None, help="Image generators: dB against the original's image."),
    quality_images: int = typer.Option(100, help="Image generators: images drawn to verify quality."),
    batch_size: int = typer.Option(8, help="Image generators: images per timed batch."),
) -> None:
    """Compress, verify against the original with your budget, profile before/after, write out/.
    Image generators (`demo-image`, a diffusers UNet2D directory): sampler and steps, --prune
    channels=F healed by --distill N, PyTorch int8 / bf16, ONNX Runtime or OpenVINO (with their int8)."""
    from genfast.images.source import is_image_model

    if is_image_model(model):
        from genfast.cli.image_cmds import image_budget, optimize_image_cmd

        set_threads(threads)
        passed = optimize_image_cmd(model, out, sampler, steps, backend, precision, quantize, prune, distill,
                                    recipe, image_budget(min_class_agreement, max_fd_increase, min_psnr),
                                    quality_images, batch_size, repeats, threads)
        if not passed:
            sys.exit(BUDGET_FAILED_EXIT)
        return
    from genfast.compress.recipe import Recipe, parse_prune, parse_quantize
    from genfast.errors import ConfigError
    from genfast.profiling.workload import Workload
    from genfast.quality.budget import QualityBudget
    from genfast.report.optimize_report import comparison_rows
    from genfast.tuning.optimize import optimize as run_optimize

    quiet_libraries()
    set_threads(threads)
    if recipe and (prune or distill or quantize):
        raise ConfigError("Give --recipe or --prune / --distill / --quantize steps, not both.")
    plan = Recipe.from_file(recipe) if recipe else Recipe(steps=[parse_prune(p) for p in prune])
    if distill:
        plan.steps.append({"technique": "Distill", "steps": distill})
    if quantize:
        plan.steps.append(parse_quantize(quantize, group_size))
    elif group_size is not None:
        raise ConfigError("--group-size goes with --quantize int4-weight.")
    plan.backend = backend or plan.backend
    plan.precision = precision or plan.precision
    budget = QualityBudget.parse(max_ppl_increase, min_top1_agreement, max_kl, min_greedy_agreement)
    workload = Workload(prompt_lens=[prompt_len], output_len=new_tokens, repeats=repeats)
    report = run_optimize(model, plan, out, budget=budget, workload=workload, threads=threads,
                          log=lambda msg: err_console.print(msg, highlight=False))
    table = Table(title=f"{model} -> {out} ({plan.backend}, {plan.precision})")
    for h in ("", "before", "after", "after / before"):
        table.add_column(h, justify="right")
    for row in comparison_rows(report):
        table.add_row(*row)
    console.print(table)
    b = report["quality"]["budget"]
    console.print("[green]PASS[/]: inside the quality budget" if b["passed"] else "[red]FAIL[/]: " + "; ".join(b["failures"]))
    console.print(f"artifact and report written to {out}", highlight=False)
    if not b["passed"]:
        sys.exit(BUDGET_FAILED_EXIT)
