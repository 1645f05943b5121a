"""`genfast optimize`: one trial of a recipe, profiled beside the original in the same run, as an artifact."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

from genfast.compress.api import recipe_of
from genfast.compress.recipe import Recipe
from genfast.errors import Interrupted, Terminated
from genfast.models.handle import ModelHandle
from genfast.output_dir import begin_output, check_output_dir, finish_output
from genfast.profiling import memory
from genfast.profiling.workload import Workload
from genfast.quality.budget import QualityBudget
from genfast.quality.compare import QualitySettings
from genfast.tuning import trial
from genfast.tuning.artifact import write_artifact

SCHEMA = "genfast.optimize/1"


def _summary(handle: ModelHandle, runtime, profile: dict, quality_ppl: dict) -> dict:
    case = profile["cases"][0]
    return {
        "backend": profile["runtime"]["backend"],
        "parameters": memory.parameter_count(handle.model),
        "weight_bytes_per_step": trial.weight_bytes_per_step(handle, runtime),
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
    """Optimise ``source`` by ``recipe`` into ``out_dir``; returns the report (also written there).

    ``out_dir`` is marked incomplete until the artifact is whole; rerunning an interrupted command
    resumes its distillation from the checkpoint in ``out_dir/.distill``."""
    from genfast.models.loading import load, resolve_model_path

    out_dir = Path(out_dir)
    check_output_dir(out_dir, resolve_model_path(source))
    workload = workload or Workload(prompt_lens=[128], output_len=64, repeats=3)
    budget = budget or QualityBudget()
    settings = settings or QualitySettings()
    recipe.threads = threads or recipe.threads

    original = load(source)
    configs = trial.plan(recipe, original.model)  # an unknown backend or impossible step fails before any work
    workload.validate(original.context_length)
    cache_len = trial.cache_len(original.context_length, workload, settings)
    candidate = load(source)
    created = not out_dir.exists()
    begin_output(out_dir)
    try:
        report = _run(source, recipe, original, candidate, configs, workload, settings, budget, cache_len, out_dir,
                      log)
    except KeyboardInterrupt as exc:
        raise _interrupted(out_dir, isinstance(exc, Terminated)) from None
    except Exception:
        if created and not (out_dir / ".distill").exists():  # nothing worth keeping: leave no trace
            shutil.rmtree(out_dir, ignore_errors=True)
        raise
    finish_output(out_dir)
    return report


def _interrupted(out_dir: Path, terminated: bool) -> Interrupted:
    """What an interrupted optimize kept: the distillation checkpoint, if one was written."""
    kept, what = out_dir / ".distill" / "distill.pt", "Terminated" if terminated else "Interrupted"
    if kept.exists():
        return Interrupted(f"{what}; the distillation checkpoint {kept} is kept.",
                           "Run the same command again to resume from it.", terminated)
    return Interrupted(f"{what}; {out_dir} is marked incomplete.", "Run the same command again.", terminated)


def _run(source: str, recipe: Recipe, original: ModelHandle, candidate: ModelHandle, configs: list,
         workload: Workload, settings: QualitySettings, budget: QualityBudget, cache_len: int, out_dir: Path,
         log: Callable[[str], None]) -> dict:
    """Steps, both profiles, the quality check and the artifact (the resumable part of optimize)."""
    from genfast.backends.registry import build_runtime
    from genfast.profiling.llm import profile_llm

    trial.apply_steps(original, candidate, configs, out_dir, log)
    # the original is profiled after the steps, so a step that fails (a shape it cannot take) fails fast
    log("profiling the original (torch, fp32)")
    base_rt = build_runtime("torch", original, max_cache_len=cache_len)
    before = profile_llm(original, workload, runtime=base_rt)
    log(f"building the {recipe.backend} runtime ({recipe.precision})")
    cand_rt = trial.build(candidate, recipe, cache_len)
    log("profiling the optimised model")
    after = profile_llm(candidate, workload, runtime=cand_rt)
    log("verifying quality against the original")
    quality = trial.measure_quality(original, cand_rt, settings, budget)

    applied = Recipe(steps=recipe_of(candidate.model), backend=recipe.backend, precision=recipe.precision,
                     threads=recipe.threads)
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
