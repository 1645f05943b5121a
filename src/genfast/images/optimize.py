"""Optimise an image generator by one recipe: sampler and steps, engine and precision; verify
against the original with a budget, time both in interleaved rounds, write a servable artifact.

The artifact is a diffusers pipeline directory (``unet/``, ``scheduler/`` holding the chosen
sampler's config) plus ``recipe.json``, ``report.json``, ``report.md``, a side-by-side PNG and,
for ONNX Runtime / OpenVINO, the exported ``unet.onnx`` it runs.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genfast.errors import ConfigError
from genfast.images.model import ImageModelHandle, image_model_path, load_image_model
from genfast.images.profile import workload_labels
from genfast.images.quality import ImageBudget
from genfast.images.runners import ENGINES, BuiltDenoiser, build_denoiser
from genfast.images.sampling import SAMPLERS, generate_images, scheduler_for
from genfast.images.verify import compare_images, draw, grid_png, quality_set


@dataclass
class ImageRecipe:
    """What is done to an image generator; saved as ``recipe.json`` beside the artifact."""

    sampler: str | None = None
    """ddpm, ddim or dpm-solver; None keeps the model's own."""
    steps: int | None = None
    """Denoising steps; None keeps the model's (every training timestep for DDPM)."""
    engine: str = "torch"
    precision: str = "fp32"
    prune: float | None = None
    """Share of every ResNet block's inner channel groups removed (then healed by distillation)."""
    distill_steps: int = 300
    """Distillation steps healing a pruned UNet (teacher: the original)."""
    version: int = 1

    def validate(self, train_steps: int) -> None:
        if self.sampler is not None and self.sampler not in SAMPLERS:
            raise ConfigError(f"Unknown sampler {self.sampler!r}.", f"Use one of: {', '.join(SAMPLERS)}.")
        if self.steps is not None and not 1 <= self.steps <= train_steps:
            raise ConfigError(f"--steps must be in 1..{train_steps} (the model's training timesteps), "
                              f"got {self.steps}.")
        if self.engine not in ENGINES:
            raise ConfigError(f"Unknown engine {self.engine!r} for image generators.",
                              f"Use one of: {', '.join(ENGINES)}.")
        if self.precision not in ENGINES[self.engine]:
            raise ConfigError(f"{self.engine} does not run image UNets in {self.precision}.",
                              f"Use one of: {', '.join(ENGINES[self.engine])}.")
        if self.prune is not None and not 0 < self.prune < 1:
            raise ConfigError(f"The channel prune fraction must be in (0, 1), got {self.prune}.",
                              "e.g. --prune channels=0.5")
        if self.distill_steps < 0:
            raise ConfigError(f"--distill must be >= 0, got {self.distill_steps}.")

    @property
    def label(self) -> str:
        steps = f"{self.sampler or 'own sampler'} x {self.steps or 'all'} steps"
        pruned = f", channels -{self.prune:.0%} + {self.distill_steps} distillation steps" if self.prune else ""
        return f"{steps}{pruned}, {self.engine} {self.precision}"


def with_recipe(handle: ImageModelHandle, recipe: ImageRecipe,
                log: Callable[[str], None] = lambda _: None) -> ImageModelHandle:
    """A handle that samples and runs as ``recipe`` says: ``handle``'s weights shared, or with
    ``recipe.prune`` a pruned copy healed by distillation from them."""
    merged = {**handle.recipe, **{k: v for k, v in dataclasses.asdict(recipe).items() if v is not None}}
    scheduler = scheduler_for(handle.scheduler, recipe.sampler) if recipe.sampler else handle.scheduler
    unet = handle.unet
    if recipe.prune:
        from genfast.images.prune import distill_unet, prune_unet, trajectory_inputs

        log(f"pruning {recipe.prune:.0%} of the ResNet blocks' channel groups")
        inputs = trajectory_inputs(handle, count=2048)
        unet, kept = prune_unet(handle, recipe.prune, inputs[::8])
        distill_unet(unet, handle.unet, inputs, recipe.distill_steps, log=log)
        merged["kept_groups"] = kept
    return dataclasses.replace(handle, unet=unet, scheduler=scheduler, recipe=merged)


def images_per_second(handle: ImageModelHandle, built: BuiltDenoiser, batch: int) -> float:
    """One timed batch of ``batch`` images with the handle's sampler and steps."""
    labels, seeds = workload_labels(handle, batch, seed=1)
    shape = (handle.channels, handle.image_size, handle.image_size)
    start = time.perf_counter()
    generate_images(built.denoise, handle.scheduler, labels, seeds, handle.steps, shape, handle.recipe.get("sampler"))
    return batch / (time.perf_counter() - start)


def timed_rounds(pairs: list[tuple[ImageModelHandle, BuiltDenoiser]], batch: int, rounds: int) -> list[list[float]]:
    """images/s of each (handle, denoiser), one batch each per round, interleaved, after one warm-up."""
    for handle, built in pairs:
        images_per_second(handle, built, batch)
    results: list[list[float]] = [[] for _ in pairs]
    for _ in range(rounds):
        for i, (handle, built) in enumerate(pairs):
            results[i].append(images_per_second(handle, built, batch))
    return results


def speed_summary(samples: list[float]) -> dict:
    return {"median": float(np.median(samples)), "min": float(min(samples)), "max": float(max(samples)),
            "samples": samples}


def save_image_artifact(handle: ImageModelHandle, built: BuiltDenoiser, out: Path) -> None:
    """The pipeline directory of ``handle`` as its recipe runs it (weights, sampler config, graph)."""
    handle.unet.save_pretrained(out / "unet", safe_serialization=True)
    handle.scheduler.save_pretrained(out / "scheduler")
    source = handle.path
    for name in ("classifier", "model_index.json"):
        if source is not None and (source / name).exists():
            copy = shutil.copytree if (source / name).is_dir() else shutil.copy2
            copy(source / name, out / name, **({"dirs_exist_ok": True} if (source / name).is_dir() else {}))
    if built.onnx_path is not None:
        shutil.copy2(built.onnx_path, out / built.onnx_path.name)
        if built.onnx_path.name != "unet.onnx":  # the int8 graph: keep the fp32 one it came from too
            shutil.copy2(built.onnx_path.parent / "unet.onnx", out / "unet.onnx")
    (out / "recipe.json").write_text(json.dumps(handle.recipe, indent=2), encoding="utf-8")


def optimize_image(source: str, recipe: ImageRecipe, out: Path, budget: ImageBudget | None = None,
                   quality_images: int = 100, batch: int = 8, rounds: int = 3, threads: int | None = None,
                   log: Callable[[str], None] = lambda _: None) -> dict:
    """Apply ``recipe`` to ``source``, verify, time before/after, write ``out``; returns the report."""
    from genfast.output_dir import begin_output, check_output_dir, finish_output

    out = Path(out)
    check_output_dir(out, image_model_path(source))
    original = load_image_model(source)
    recipe.validate(original.scheduler.config.num_train_timesteps)
    budget = budget or ImageBudget()
    created = not out.exists()
    begin_output(out)
    try:
        candidate = with_recipe(original, recipe, log)
        report = _run(original, candidate, recipe, out, budget, quality_images, batch, rounds, threads, log)
    except BaseException:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise
    finish_output(out)
    return report


def _run(original, candidate, recipe, out, budget, quality_images, batch, rounds, threads, log) -> dict:
    log(f"building {recipe.label}")
    built = build_denoiser(candidate, recipe.engine, recipe.precision, threads=threads)
    baseline = build_denoiser(original, "torch", "fp32", threads=threads)
    log(f"drawing {quality_images} images with both models")
    labels, seeds = quality_set(original, quality_images)
    reference_images = draw(original, baseline, labels, seeds)
    save_image_artifact(candidate, built, out)
    saved = load_image_model(str(out), unfinished_ok=True)  # what is verified is what was written
    saved.source = candidate.source
    quality, _, candidate_images = compare_images(original, saved, quality_images, budget, threads,
                                                  reference_images=reference_images)
    log(f"timing batches of {batch}, {rounds} interleaved rounds")
    before, after = timed_rounds([(original, baseline), (candidate, built)], batch, rounds)
    report = {
        "schema": "genfast.optimize-image/1",
        "source": original.source,
        "recipe": candidate.recipe,
        "batch": batch,
        "before": {**quality["reference"], "images_per_s": speed_summary(before)},
        "after": {**quality["candidate"], "images_per_s": speed_summary(after)},
        "speedup": float(np.median(after) / np.median(before)),
        "quality": quality,
    }
    (out / "report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    grid_png([reference_images, candidate_images], [f"reference: {original.sampler} x {original.steps} steps",
                                                    f"candidate: {recipe.label}"], out / "samples.png")
    (out / "report.md").write_text(report_markdown(report), encoding="utf-8")
    return report


def report_markdown(report: dict) -> str:
    q = report["quality"]["quality"]
    b, a = report["before"], report["after"]
    lines = [
        f"# {report['source']}: {a['sampler']} x {a['steps']} steps on {a['engine']} {a['precision']}", "",
        f"Batches of {report['batch']} images, interleaved rounds (median, min-max images/s).", "",
        "| | sampler x steps | engine | images/s |", "|---|---|---|---|",
        f"| before | {b['sampler']} x {b['steps']} | {b['engine']} {b['precision']} | "
        f"{b['images_per_s']['median']:.2f} ({b['images_per_s']['min']:.2f}-{b['images_per_s']['max']:.2f}) |",
        f"| after | {a['sampler']} x {a['steps']} | {a['engine']} {a['precision']} | "
        f"{a['images_per_s']['median']:.2f} ({a['images_per_s']['min']:.2f}-{a['images_per_s']['max']:.2f}) |", "",
        f"Speed-up: {report['speedup']:.2f}x.", "",
        f"Quality over {q['images']} images (95 % bootstrap intervals): PSNR {fmt(q['psnr_db'])} dB, "
        f"SSIM {fmt(q['ssim'])}",
    ]
    if q.get("class_agreement"):
        lines[-1] += (f", class agreement {fmt(q['class_agreement'])}, requested digit recognised "
                      f"{q['reference_label_accuracy']:.1%} -> {q['candidate_label_accuracy']:.1%}")
    if q.get("candidate_fd"):
        lines[-1] += (f", Fréchet distance to {q['real_images']} held-out digits {fmt(q['reference_fd'])} -> "
                      f"{fmt(q['candidate_fd'])} ({q['fd_increase']:+.1%})")
    budget = report["quality"]["budget"]
    lines += ["", "PASS: inside the quality budget" if budget["passed"] else "FAIL: " + "; ".join(budget["failures"]),
              "", "![samples](samples.png)", ""]
    return "\n".join(lines)


def fmt(estimate: dict) -> str:
    return f"{estimate['value']:.3g} [{estimate['low']:.3g}, {estimate['high']:.3g}]"
