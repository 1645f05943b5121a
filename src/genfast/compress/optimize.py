"""Apply a recipe, verify it against the original, profile both in the same run, write the artifact."""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Callable
from pathlib import Path

from genfast.compress.api import compress_, recipe_of, record_step
from genfast.compress.distill import Distill, distill
from genfast.compress.recipe import Recipe, step_config
from genfast.errors import ConfigError
from genfast.models.handle import ModelHandle
from genfast.profiling import memory
from genfast.profiling.workload import Workload
from genfast.quality.budget import QualityBudget
from genfast.quality.compare import QualitySettings

SCHEMA = "genfast.optimize/1"


def check_output_dir(out_dir: Path, source_path: Path) -> None:
    """Refuse to write into the original model's files or over a directory that is not ours."""
    out, src = out_dir.resolve(), source_path.resolve()
    if out == src or src in out.parents:
        raise ConfigError(f"The output {out_dir} is inside the original model's directory {source_path}.",
                          "Choose another -o directory: the original files are never modified.")
    if out.exists() and any(out.iterdir()) and not (out / "recipe.json").exists():
        raise ConfigError(f"{out_dir} exists, is not empty and is not a genfast artifact.",
                          "Choose an empty or new -o directory.")


def _check_steps(configs: list, backend) -> None:
    """Before any work: distillation trains float weights, so it comes before quantizing or
    casting, and the backend must run what the steps produce."""
    from genfast.compress.quantize import LAYER_QUANTIZERS, CastPrecision

    caps, lowered = backend.capabilities, False
    for config in configs:
        if isinstance(config, Distill) and lowered:
            raise ConfigError("Distill comes after a quantization or cast step in the recipe; it trains float "
                              "weights.", "Put the distillation before that step.")
        if isinstance(config, LAYER_QUANTIZERS) and not caps.quantized_layers:
            raise ConfigError(f"--quantize makes PyTorch layers the {backend.name} backend cannot run.",
                              f"Use --backend torch, or --backend {backend.name} --precision int8 alone.")
        if isinstance(config, CastPrecision) and config.dtype not in caps.dtypes:
            raise ConfigError(f"The {backend.name} backend takes {', '.join(caps.dtypes)} weights, not {config.dtype}.",
                              "Leave out the cast, or use --backend torch.")
        lowered = lowered or isinstance(config, (*LAYER_QUANTIZERS, CastPrecision))


def _summary(handle: ModelHandle, runtime, profile: dict, quality_ppl: dict) -> dict:
    case = profile["cases"][0]
    return {
        "backend": profile["runtime"]["backend"],
        "parameters": memory.parameter_count(handle.model),
        "weight_bytes_per_step": (getattr(runtime, "weight_bytes_per_step", None)
                                  or memory.weight_bytes_read_per_step(handle.model)),
        "ttft_s": case["ttft_s"]["median"],
        "tpot_s": case["tpot_s"]["median"] if case["tpot_s"] else None,
        "tokens_per_s": case["tokens_per_s"]["median"],
        "decode_tokens_per_s": case["decode_tokens_per_s"]["median"] if case["decode_tokens_per_s"] else None,
        "peak_rss_bytes": case["memory"]["peak_rss_bytes"],
        "perplexity": quality_ppl["value"],
    }


def optimize(source: str, recipe: Recipe, out_dir: Path, budget: QualityBudget | None = None,
             workload: Workload | None = None, settings: QualitySettings | None = None,
             threads: int | None = None, log: Callable[[str], None] = lambda _: None) -> dict:
    """Optimise ``source`` by ``recipe`` into ``out_dir``; returns the report (also written there)."""
    from genfast.backends.registry import build_runtime, get_backend
    from genfast.models.loading import load, resolve_model_path
    from genfast.profiling.llm import profile_llm
    from genfast.quality.compare import compare

    out_dir = Path(out_dir)
    check_output_dir(out_dir, resolve_model_path(source))
    configs = [step_config(step) for step in recipe.steps]  # every step is checked before any work
    _check_steps(configs, get_backend(recipe.backend))  # an unknown or missing backend fails before any work
    workload = workload or Workload(prompt_lens=[128], output_len=64, repeats=3)
    budget = budget or QualityBudget()
    settings = settings or QualitySettings()

    original = load(source)
    workload.validate(original.context_length)
    # one cache size serves both the profile and the quality check's greedy generations
    cache_len = min(original.context_length, max(max(workload.prompt_lens) + workload.output_len,
                                                 settings.prompt_len + settings.new_tokens))
    candidate = load(source)
    for config in configs:
        log(f"applying {type(config).__name__}")
        if isinstance(config, Distill):  # heal what came before, with the original as the teacher
            from genfast.textdata import reference_text, training_text

            history = distill(original.model, candidate.model, original.tokenizer, training_text(),
                              reference_text(), config, work_dir=out_dir / ".distill", log=log)
            # record the steps done (a time budget may stop early), so the recipe replays this run
            done = history[-1]["step"] if history else config.steps
            record_step(candidate.model, dataclasses.replace(
                config, steps=done, schedule_steps=config.schedule_steps or config.steps, max_minutes=None))
        else:
            compress_(candidate, config)
    # the original is profiled after the steps, so a step that fails (a shape it cannot take) fails fast
    log("profiling the original (torch, fp32)")
    base_rt = get_backend("torch").build(original, max_cache_len=cache_len)
    before = profile_llm(original, workload, runtime=base_rt)
    log(f"building the {recipe.backend} runtime ({recipe.precision})")
    cand_rt = build_runtime(recipe.backend, candidate, precision=recipe.precision, threads=threads,
                            max_cache_len=cache_len)
    log("profiling the optimised model")
    after = profile_llm(candidate, workload, runtime=cand_rt)
    log("verifying quality against the original")
    quality = compare(original, cand_rt, original.tokenizer, settings=settings, budget=budget)

    applied = Recipe(steps=recipe_of(candidate.model), backend=recipe.backend, precision=recipe.precision)
    report = {
        "schema": SCHEMA,
        "source": source,
        "recipe": json.loads(applied.to_json()),
        "before": _summary(original, base_rt, before, quality["perplexity"]["reference"]),
        "after": _summary(candidate, cand_rt, after, quality["perplexity"]["candidate"]),
        "quality": quality,
        "profiles": {"before": before, "after": after},
    }
    write_artifact(candidate, applied, report, out_dir)
    return report


def write_artifact(handle: ModelHandle, recipe: Recipe, report: dict, out_dir: Path) -> Path:
    """Weights + tokenizer + generation config + recipe.json + report.{json,md} + plot."""
    from genfast.models.saving import save
    from genfast.report.optimize_report import write_optimize_report

    save(handle, out_dir, recipe)
    shutil.rmtree(out_dir / ".distill", ignore_errors=True)  # the resumable checkpoint is done with
    (out_dir / "report.json").write_text(json.dumps(report, indent=2))
    write_optimize_report(report, out_dir)
    return out_dir
