"""The image-generator side of ``profile``, ``compare`` and ``optimize`` (``--model demo-image`` or a
diffusers UNet2D pipeline directory): parse, call ``genfast.images``, print."""

from __future__ import annotations

import json
from pathlib import Path

from rich.progress import Progress
from rich.table import Table

from genfast.cli.common import console, err_console


def _ms(summary: dict) -> str:
    return f"{summary['median'] * 1e3:.2f}"


def print_image_profile(result: dict) -> None:
    m = result["model"]
    console.print(f"{m['source']}: {m['architecture']}, {m['parameters'] / 1e6:.2f}M parameters, "
                  f"{m['image_size']}x{m['image_size']}x{m['channels']}, {result['sampler']} x {result['steps']} "
                  f"steps on {result['engine']} {result['precision']}", highlight=False)
    table = Table(title="Images (medians; ms per batch unless named)")
    for h in ("batch", "images/s", "ms/image", "e2e", "preprocess", "UNet", "scheduler", "postprocess",
              "UNet ms/step", "sched ms/step", "UNet share"):
        table.add_column(h, justify="right")
    for c in result["cases"]:
        s = c["stages_s"]
        table.add_row(str(c["batch_size"]), f"{c['images_per_s']:.2f}", f"{c['latency_per_image_s'] * 1e3:.1f}",
                      _ms(c["e2e_s"]), _ms(s["preprocess"]), _ms(s["unet"]), _ms(s["scheduler"]),
                      _ms(s["postprocess"]), f"{c['step_s']['unet']['median'] * 1e3:.3f}",
                      f"{c['step_s']['scheduler']['median'] * 1e3:.3f}", f"{c['unet_share']:.0%}")
    console.print(table)
    console.print(f"peak RSS {result['memory']['peak_rss_bytes'] / 2**20:.0f} MiB", highlight=False)
    for w in result["warnings"]:
        console.print(f"[yellow]warning:[/] {w}")


def profile_image(model: str, batch_sizes: list[int], steps: int | None, sampler: str | None, engine: str | None,
                  precision: str | None, repeats: int, warmup: int, seed: int, threads: int | None, as_json: bool,
                  report: Path | None) -> None:
    """``genfast profile`` for an image generator."""
    from genfast.images.model import load_image_model
    from genfast.images.profile import profile_images, step_plot
    from genfast.images.runners import build_denoiser

    handle = load_image_model(model)
    built = build_denoiser(handle, engine or handle.recipe.get("engine", "torch"),
                           precision or handle.recipe.get("precision", "fp32"), threads=threads)
    sampler = sampler or handle.recipe.get("sampler")
    with Progress(console=err_console, transient=True, disable=as_json) as bar:
        task = bar.add_task("profiling", total=len(batch_sizes) * (warmup + repeats))
        result = profile_images(handle, built, batch_sizes, steps or handle.steps, sampler, warmup, repeats, seed,
                                on_run=lambda: bar.advance(task))
    if report:
        report.mkdir(parents=True, exist_ok=True)
        (report / "profile.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
        step_plot(result, report / "step_times.png")
        err_console.print(f"report written to {report}")
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        print_image_profile(result)


def image_budget(min_class_agreement: str | None, max_fd_increase: str | None, min_psnr: str | None):
    """The image budget from CLI strings; each one given replaces its default."""
    from genfast.images.quality import ImageBudget, parse_fraction

    budget = ImageBudget()
    if min_class_agreement is not None:
        budget.min_class_agreement = parse_fraction(min_class_agreement, "--min-class-agreement")
    if max_fd_increase is not None:
        budget.max_fd_increase = parse_fraction(max_fd_increase, "--max-fd-increase")
    if min_psnr is not None:
        budget.min_psnr = parse_fraction(min_psnr, "--min-psnr")
    return budget


def _quality_table(result: dict, title: str) -> Table:
    q = result["quality"]
    table = Table(title=title)
    table.add_column("figure")
    table.add_column("value  [95% CI]", justify="right")

    def est(e: dict, unit: str = "") -> str:
        return f"{e['value']:.4g}{unit}  [{e['low']:.4g}, {e['high']:.4g}]"

    table.add_row("PSNR vs reference image", est(q["psnr_db"], " dB"))
    table.add_row("SSIM vs reference image", est(q["ssim"]))
    if q.get("class_agreement"):
        table.add_row("classifier agrees with reference", est(q["class_agreement"]))
        table.add_row("requested digit recognised, reference / candidate",
                      f"{q['reference_label_accuracy']:.1%} / {q['candidate_label_accuracy']:.1%}")
    if q.get("candidate_fd"):
        table.add_row(f"Fréchet distance to {q['real_images']} held-out digits, reference", est(q["reference_fd"]))
        table.add_row("Fréchet distance, candidate", est(q["candidate_fd"]))
        table.add_row("Fréchet distance change", f"{q['fd_increase']:+.1%}")
    return table


def _verdict(budget: dict) -> None:
    console.print("[green]PASS[/]: inside the quality budget" if budget["passed"]
                  else "[red]FAIL[/]: " + "; ".join(budget["failures"]))


def compare_image(reference: str, candidate: str, images: int, budget, grid: Path | None, threads: int | None,
                  as_json: bool) -> bool:
    """``genfast compare`` for image generators; returns whether the budget passed."""
    from genfast.images.model import load_image_model
    from genfast.images.verify import compare_images, grid_png

    ref, cand = load_image_model(reference), load_image_model(candidate)
    with Progress(console=err_console, transient=True, disable=as_json) as bar:
        bar.add_task(f"drawing {images} images with each model", total=None)
        result, ref_images, cand_images = compare_images(ref, cand, images, budget, threads)
    if grid:
        grid_png([ref_images, cand_images], [f"reference: {reference}", f"candidate: {candidate}"], grid)
        err_console.print(f"side-by-side grid written to {grid}")
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        r, c = result["reference"], result["candidate"]
        console.print(_quality_table(result, f"{candidate} ({c['sampler']} x {c['steps']}, {c['engine']} "
                                             f"{c['precision']}) vs {reference} ({r['sampler']} x {r['steps']}): "
                                             f"{images} images, same labels and seeds"))
        _verdict(result["budget"])
    return result["budget"]["passed"]


QUANTIZE_TO_PRECISION = {"int8-dynamic": "int8-dynamic", "int8-weight": "int8-weight", "bf16": "bf16"}
"""``--quantize`` values that mean a PyTorch precision of the UNet."""


def channel_fraction(prune: list[str]) -> float | None:
    """``--prune channels=F`` (the one structured pruning kind for UNets) -> F."""
    from genfast.errors import ConfigError

    if not prune:
        return None
    kind, _, amount = prune[0].partition("=")
    if len(prune) > 1 or kind != "channels":
        raise ConfigError(f"--prune {prune[0]} does not apply to image generators.",
                          "Use --prune channels=0.5 (ResNet blocks' inner channels).")
    try:
        return float(amount)
    except ValueError:
        raise ConfigError(f"--prune channels={amount}: not a number.", "e.g. --prune channels=0.5") from None


def optimize_image_cmd(model: str, out: Path, sampler: str | None, steps: int | None, backend: str | None,
                       precision: str | None, quantize: str | None, prune: list[str], distill: int,
                       recipe_file: Path | None, budget, quality_images: int, batch: int, rounds: int,
                       threads: int | None) -> bool:
    """``genfast optimize`` for image generators; returns whether the budget passed."""
    from genfast.errors import ConfigError
    from genfast.images.optimize import ImageRecipe, optimize_image

    if recipe_file is not None:
        raise ConfigError("--recipe files describe language-model steps; image generators take flags.",
                          "Use --sampler / --steps / --prune channels=F / --quantize / --backend.")

    if quantize is not None:
        if quantize not in QUANTIZE_TO_PRECISION or backend not in (None, "torch") or precision:
            raise ConfigError(f"--quantize {quantize} does not apply to image generators here.",
                              "Use --quantize int8-dynamic, int8-weight or bf16 (PyTorch), or --backend "
                              "onnxruntime / openvino with --precision.")
        precision = QUANTIZE_TO_PRECISION[quantize]
    recipe = ImageRecipe(sampler=sampler, steps=steps, engine=backend or "torch", precision=precision or "fp32",
                         prune=channel_fraction(prune), distill_steps=distill)
    report = optimize_image(model, recipe, out, budget, quality_images, batch, rounds, threads,
                            log=lambda msg: err_console.print(msg, highlight=False))
    b, a = report["before"], report["after"]
    table = Table(title=f"{model} -> {out}: batches of {report['batch']} (interleaved rounds)")
    for h in ("", "sampler x steps", "engine", "images/s (median, min-max)"):
        table.add_column(h, justify="right")
    for name, side in (("before", b), ("after", a)):
        s = side["images_per_s"]
        table.add_row(name, f"{side['sampler']} x {side['steps']}", f"{side['engine']} {side['precision']}",
                      f"{s['median']:.2f} ({s['min']:.2f}-{s['max']:.2f})")
    table.add_row("speed-up", "", "", f"{report['speedup']:.2f}x")
    console.print(table)
    console.print(_quality_table(report["quality"], f"quality over {report['quality']['images']} images"))
    _verdict(report["quality"]["budget"])
    console.print(f"artifact and report written to {out}", highlight=False)
    return report["quality"]["budget"]["passed"]


def tune_image_cmd(model: str, out: Path, objective: str, time_budget_s: float, batch: int, budget,
                   quality_images: int, finalists: int, rounds: int, engines: list[str]) -> bool:
    """``genfast tune`` for image generators; returns whether a winner was found."""
    from genfast.errors import ConfigError
    from genfast.images.runners import ENGINES
    from genfast.images.tune import ImageTuneOptions, answer_line, available_engines, tune_image

    unknown = [e for e in engines if e not in ENGINES]
    if unknown:
        raise ConfigError(f"Unknown engine {unknown[0]!r} for image generators.", f"Use one of: {', '.join(ENGINES)}.")
    options = ImageTuneOptions(objective=objective, batch=batch, time_budget_s=time_budget_s, budget=budget,
                               quality_images=quality_images, finalists=finalists, rounds=rounds,
                               engines=[p for p in available_engines() if not engines or p[0] in engines])
    with Progress(console=err_console, transient=True) as bar:
        task = bar.add_task("drawing the original's images", total=None)
        report = tune_image(model, out, options,
                            progress=lambda e: bar.update(task, description=f"{e['phase']}: {e['label']}"))
    console.print(answer_line(report), highlight=False, soft_wrap=True)
    console.print(f"Report: {out / 'report.md'} (and report.json, trials.jsonl)", highlight=False, soft_wrap=True)
    if report["winner"] is None:
        return False
    console.print(f"Artifact: {report['winner']['artifact']}  (serve it: genfast serve --model "
                  f"{report['winner']['artifact']})", highlight=False, soft_wrap=True)
    return True
