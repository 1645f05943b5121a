"""``genfast tune`` for image generators: search sampler x steps x engine x precision on this
machine and keep the fastest candidate inside the image quality budget.

Every candidate draws the same labels and seeds as the original (drawn once) and is judged by
the budget (classifier agreement, Fréchet distance, PSNR if asked). Samplers are screened on
PyTorch fp32 first (the engine does not change which images a sampler draws, beyond rounding);
the ones that pass, fewest steps first, are then tried on every engine and precision, each
verified again (reduced precisions do change images). The fastest few are timed in interleaved
rounds, and the winner is written as a servable pipeline directory.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from genfast.errors import ConfigError
from genfast.images.model import ImageModelHandle, image_model_path, load_image_model
from genfast.images.optimize import (
    ImageRecipe,
    images_per_second,
    save_image_artifact,
    speed_summary,
    timed_rounds,
    with_recipe,
)
from genfast.images.quality import ImageBudget, measure
from genfast.images.runners import ENGINES, build_denoiser
from genfast.images.verify import draw, quality_set, real_images

TRIALS = "trials.jsonl"
OBJECTIVES = {"throughput": "images/s in batches", "latency": "images/s one at a time (1 / latency)"}


@dataclass
class ImageTuneOptions:
    objective: str = "throughput"
    batch: int = 16
    """Images per timed batch for the throughput objective (latency times batches of 1)."""
    time_budget_s: float = 480.0
    budget: ImageBudget = field(default_factory=ImageBudget)
    quality_images: int = 100
    samplers: list[tuple[str, int]] = field(default_factory=lambda: [
        ("ddim", 100), ("ddim", 50), ("ddim", 25), ("dpm-solver", 25), ("dpm-solver", 15), ("dpm-solver", 10)])
    engines: list[tuple[str, str]] | None = None
    """(engine, precision) pairs; None: every one whose packages are installed."""
    sampler_settings_per_engine: int = 2
    finalists: int = 3
    rounds: int = 3
    threads: int | None = None

    def validate(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ConfigError(f"Unknown objective {self.objective!r} for image generators.",
                              f"Use one of: {', '.join(OBJECTIVES)}.")
        if self.batch < 1 or self.quality_images < 2 or self.rounds < 1 or self.finalists < 1:
            raise ConfigError("batch, rounds and finalists must be at least 1 and quality images at least 2.")

    @property
    def timed_batch(self) -> int:
        return 1 if self.objective == "latency" else self.batch


def available_engines() -> list[tuple[str, str]]:
    import importlib.util

    present = {"torch": True, "onnxruntime": importlib.util.find_spec("onnxruntime") is not None,
               "openvino": importlib.util.find_spec("openvino") is not None and
               importlib.util.find_spec("nncf") is not None}
    return [(e, p) for e, precisions in ENGINES.items() if present[e] for p in precisions]


def tune_image(source: str, out: Path, options: ImageTuneOptions | None = None,
               progress: Callable[[dict], None] = lambda _: None) -> dict:
    """Search, verify, time and write ``out/{best/, report.json, report.md, trials.jsonl}``."""
    from genfast.output_dir import check_output_dir, make_output_dir

    options = options or ImageTuneOptions()
    options.validate()
    out = Path(out)
    check_output_dir(out, image_model_path(source), marker=TRIALS)
    start = time.monotonic()
    original = load_image_model(source)
    train_steps = original.scheduler.config.num_train_timesteps
    samplers = [(s, n) for s, n in options.samplers if n <= train_steps]
    make_output_dir(out)
    trials_file = out / TRIALS
    trials_file.write_text("", encoding="utf-8")
    labels, seeds = quality_set(original, options.quality_images)
    progress({"phase": "reference", "label": f"{original.sampler} x {original.steps} steps"})
    baseline = build_denoiser(original, "torch", "fp32", threads=options.threads)
    reference = draw(original, baseline, labels, seeds)
    real = real_images(original)
    trials: list[dict] = []

    def over_budget() -> bool:
        return time.monotonic() - start > options.time_budget_s

    def trial(recipe: ImageRecipe) -> dict:
        progress({"phase": "screen", "label": recipe.label, "index": len(trials) + 1})
        handle = with_recipe(original, recipe)
        record = {"label": recipe.label, "recipe": dataclasses.asdict(recipe)}
        try:
            built = build_denoiser(handle, recipe.engine, recipe.precision, threads=options.threads)
            quality = measure(reference, draw(handle, built, labels, seeds), labels, original.classifier, real)
            failures = options.budget.violations(quality)
            record.update(quality=quality.as_dict(), passed=not failures, failures=failures)
            if not failures:
                images_per_second(handle, built, options.timed_batch)  # warm-up
                record["images_per_s"] = float(np.median([images_per_second(handle, built, options.timed_batch)
                                                          for _ in range(2)]))
            record["_handle"], record["_built"] = handle, built
        except Exception as exc:  # noqa: BLE001 - one candidate that cannot run is a recorded result
            first = str(exc).splitlines()[0] if str(exc) else ""
            record.update(passed=False, failures=[f"{type(exc).__name__}: {first}"])
        trials.append(record)
        with trials_file.open("a", encoding="utf-8") as f:
            f.write(json.dumps({k: v for k, v in record.items() if not k.startswith("_")}) + "\n")
        return record

    passing_samplers = []
    for sampler, steps in sorted(samplers, key=lambda s: s[1]):  # fewest steps first
        if over_budget() or len(passing_samplers) >= options.sampler_settings_per_engine:
            break
        if trial(ImageRecipe(sampler=sampler, steps=steps))["passed"]:
            passing_samplers.append((sampler, steps))
    for engine, precision in options.engines or available_engines():
        if (engine, precision) == ("torch", "fp32"):
            continue
        for sampler, steps in passing_samplers:
            if over_budget():
                break
            trial(ImageRecipe(sampler=sampler, steps=steps, engine=engine, precision=precision))
    report = _finish(original, baseline, trials, options, out, progress, time.monotonic() - start)
    (out / "report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    (out / "report.md").write_text(report_markdown(report), encoding="utf-8")
    return report


def _finish(original: ImageModelHandle, baseline, trials: list[dict], options: ImageTuneOptions, out: Path,
            progress, elapsed_s: float) -> dict:
    passed = sorted([t for t in trials if t["passed"]], key=lambda t: -t["images_per_s"])
    finalists = passed[:options.finalists]
    winner = None
    if finalists:
        progress({"phase": "final", "label": f"{len(finalists)} finalists x {options.rounds} rounds"})
        pairs = [(original, baseline)] + [(t["_handle"], t["_built"]) for t in finalists]
        rounds = timed_rounds(pairs, options.timed_batch, options.rounds)
        for t, samples in zip(finalists, rounds[1:], strict=True):
            t["final"] = speed_summary(samples)
        best = max(finalists, key=lambda t: t["final"]["median"])
        progress({"phase": "artifact", "label": best["label"]})
        save_image_artifact(best["_handle"], best["_built"], out / "best")
        original_speed = speed_summary(rounds[0])
        winner = {"label": best["label"], "recipe": best["_handle"].recipe, "images_per_s": best["final"],
                  "original_images_per_s": original_speed,
                  "speedup": best["final"]["median"] / original_speed["median"], "quality": best["quality"],
                  "artifact": str(out / "best")}
    return {
        "schema": "genfast.tune-image/1", "source": original.source,
        "objective": {"name": options.objective, "metric": OBJECTIVES[options.objective],
                      "batch": options.timed_batch},
        "original": {"sampler": original.sampler, "steps": original.steps},
        "budget": dataclasses.asdict(options.budget), "elapsed_s": elapsed_s,
        "trials": [{k: v for k, v in t.items() if not k.startswith("_")} for t in trials],
        "winner": winner,
    }


def answer_line(report: dict) -> str:
    w = report["winner"]
    if w is None:
        return "No candidate ran inside the image quality budget; see the report for what broke it."
    q = w["quality"]
    agreement = f", class agreement {q['class_agreement']['value']:.2f}" if q.get("class_agreement") else ""
    fd = f", Fréchet distance {q['fd_increase']:+.0%}" if q.get("fd_increase") is not None else ""
    o = report["original"]
    return (f"Winner: {w['label']}: {w['images_per_s']['median']:.2f} {report['objective']['metric']} of "
            f"{report['objective']['batch']}, {w['speedup']:.1f}x the original ({o['sampler']} x {o['steps']} "
            f"steps, PyTorch fp32){agreement}{fd}.")


def report_markdown(report: dict) -> str:
    lines = [f"# genfast tune: {report['source']}", "", answer_line(report), "",
             f"Objective: {report['objective']['metric']} of {report['objective']['batch']}; "
             f"{len(report['trials'])} candidates in {report['elapsed_s']:.0f} s.", "",
             "| candidate | images/s (screening) | final median (min-max) | class agreement | FD change | verdict |",
             "|---|---|---|---|---|---|"]
    for t in report["trials"]:
        q = t.get("quality") or {}
        agreement = f"{q['class_agreement']['value']:.2f}" if q.get("class_agreement") else "-"
        fd = f"{q['fd_increase']:+.1%}" if q.get("fd_increase") is not None else "-"
        final = t.get("final")
        final_text = f"{final['median']:.2f} ({final['min']:.2f}-{final['max']:.2f})" if final else "-"
        speed = f"{t['images_per_s']:.2f}" if "images_per_s" in t else "-"
        verdict = "pass" if t["passed"] else "; ".join(t["failures"])
        lines.append(f"| {t['label']} | {speed} | {final_text} | {agreement} | {fd} | {verdict} |")
    return "\n".join(lines) + "\n"
