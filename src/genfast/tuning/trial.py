"""One trial: a recipe applied to a fresh copy of the model, its runtime built, its quality and speed measured.

Shared by `genfast optimize` (one trial, in process), `genfast tune`'s worker processes and
`benchmarks/runtimes.py`, so every number comes from the same code.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from genfast.compress.recipe import Recipe, step_config
from genfast.models.handle import ModelHandle
from genfast.profiling import memory
from genfast.profiling.workload import Workload, prompt_windows
from genfast.quality.budget import QualityBudget
from genfast.quality.compare import QualitySettings

OBJECTIVES = {"latency": ("tpot_s", False), "ttft": ("ttft_s", False), "throughput": ("tokens_per_s", True)}
"""objective -> (the metric it ranks by, whether higher is better)."""


def objective_metric(objective: str) -> tuple[str, bool]:
    """The metric ``objective`` ranks by and whether higher is better; ConfigError if unknown."""
    from genfast.errors import ConfigError

    if objective not in OBJECTIVES:
        raise ConfigError(f"Unknown objective {objective!r}.", f"Use one of: {', '.join(OBJECTIVES)}.")
    return OBJECTIVES[objective]


def plan(recipe: Recipe, model: torch.nn.Module) -> list:
    """The recipe's step configs, checked (with the backend's capabilities) before any work is done."""
    from genfast.backends.registry import check_recipe, get_backend

    configs = [step_config(step) for step in recipe.steps]
    check_recipe(get_backend(recipe.backend), configs, model, recipe.precision)
    return configs


def apply_steps(original: ModelHandle, candidate: ModelHandle, configs: list, work_dir: Path,
                log: Callable[[str], None] = lambda _: None) -> None:
    """Apply ``configs`` to ``candidate`` in order; a Distill step heals what came before, with
    ``original`` as the teacher (its resumable checkpoint lives in ``work_dir/.distill``)."""
    from genfast.compress.api import compress_, record_step
    from genfast.compress.distill import Distill, distill

    for config in configs:
        log(f"applying {type(config).__name__}")
        if isinstance(config, Distill):
            from genfast.textdata import reference_text, training_text

            history = distill(original.model, candidate.model, original.tokenizer, training_text(),
                              reference_text(), config, work_dir=Path(work_dir) / ".distill", log=log)
            # record the steps done (a time budget may stop early), so the recipe replays this run
            done = history[-1]["step"] if history else config.steps
            record_step(candidate.model, dataclasses.replace(
                config, steps=done, schedule_steps=config.schedule_steps or config.steps, max_minutes=None))
        else:
            compress_(candidate, config)


def cache_len(context_length: int, workload: Workload, settings: QualitySettings | None = None) -> int:
    """One KV-cache size that serves the profile and the quality check's greedy generations."""
    need = max(workload.prompt_lens) + workload.output_len
    if settings:
        need = max(need, settings.prompt_len + settings.new_tokens)
    return min(context_length, need)


def build(handle: ModelHandle, recipe: Recipe, max_cache_len: int, batch: int = 1,
          export_cache: Path | None = None):
    """The runtime of ``recipe``'s backend over ``handle`` (its steps already applied); exporting
    backends reuse a graph of the same content from ``export_cache``."""
    from genfast.backends.registry import build_runtime

    return build_runtime(recipe.backend, handle, precision=recipe.precision, threads=recipe.threads,
                         max_cache_len=max_cache_len, batch=batch, export_cache=export_cache)


def weight_bytes_per_step(handle: ModelHandle, runtime) -> int:
    """Bytes of weights one decode step reads (a runtime that stores them its own way says so)."""
    return getattr(runtime, "weight_bytes_per_step", None) or memory.weight_bytes_read_per_step(handle.model)


def measure_quality(original: ModelHandle, runtime, settings: QualitySettings | None = None,
                    budget: QualityBudget | None = None) -> dict:
    """``genfast compare`` of the candidate's runtime against the original model."""
    from genfast.quality.compare import compare

    return compare(original, runtime, original.tokenizer, settings=settings, budget=budget)


def quality_figures(quality: dict) -> dict:
    """The figures a quality budget checks, each with its 95 % CI, from a ``compare`` result."""
    return {"ppl_increase": quality["perplexity"]["relative_change"], "kl": quality["kl"],
            "top1_agreement": quality["top1_agreement"], "greedy_agreement": quality["greedy"]["agreement"],
            "perplexity": quality["perplexity"]["candidate"]["value"],
            "perplexity_reference": quality["perplexity"]["reference"]["value"]}


def budget_failures(budget: QualityBudget, figures: dict) -> list[str]:
    """The limits of ``budget`` that ``figures`` (from :func:`quality_figures`) break."""
    return budget.check({k: figures[k]["value"] for k in ("ppl_increase", "kl", "top1_agreement",
                                                          "greedy_agreement")})


def time_decode(handle: ModelHandle, runtime, workload: Workload) -> dict:
    """Time the decode loop (genfast's profiler) on the first case of ``workload``."""
    from genfast.profiling.llm import profile_llm

    case = profile_llm(handle, workload, runtime=runtime)["cases"][0]
    tpot = case["tpot_s"]["median"] if case["tpot_s"] else None
    return {"ttft_s": case["ttft_s"]["median"], "tpot_s": tpot,
            "decode_tokens_per_s": case["decode_tokens_per_s"]["median"] if tpot else None,
            "tokens_per_s": case["tokens_per_s"]["median"], "e2e_s": case["e2e_s"]["median"],
            "roofline_fraction": case["roofline"]["achieved_fraction"] if case["roofline"] else None,
            "tokenize_share": case["stages_s"]["tokenize"]["median"] / case["e2e_s"]["median"],
            "peak_rss_bytes": case["memory"]["peak_rss_bytes"]}


def time_generate(handle: ModelHandle, workload: Workload) -> dict:
    """transformers' own ``generate()`` (greedy, EOS ignored): TTFT from 1-token runs, the decode
    rate from full runs; the baseline every speed-up is quoted against."""
    from genfast.textdata import reference_text

    batch, new = workload.batch_sizes[0], workload.output_len
    ids = prompt_windows(handle.tokenizer(reference_text())["input_ids"], workload.prompt_lens[0], batch,
                         workload.seed).to(handle.device)
    kwargs = dict(do_sample=False, pad_token_id=handle.tokenizer.eos_token_id)

    def timed(n: int) -> float:
        start = time.perf_counter()
        with torch.inference_mode():
            handle.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, min_new_tokens=n,
                                  **kwargs)
        return time.perf_counter() - start

    for _ in range(workload.warmup):
        timed(new)
    ttft = statistics.median(timed(1) for _ in range(workload.repeats))
    full = statistics.median(timed(new) for _ in range(workload.repeats))
    # on a busy machine a 1-token run can take longer than a full one: then there is no rate to quote
    tpot = (full - ttft) / (new - 1) if new > 1 and full > ttft else None
    return {"ttft_s": ttft, "tpot_s": tpot, "decode_tokens_per_s": batch / tpot if tpot else None,
            "tokens_per_s": batch * new / full, "e2e_s": full, "roofline_fraction": None, "tokenize_share": 0.0,
            "peak_rss_bytes": memory.peak_rss_bytes()}


def time_engine(handle: ModelHandle, runtime, workload: Workload, concurrency: int, max_running: int) -> dict:
    """Output tokens/s of the serving engine (continuous batching, ``max_running`` rows) with
    ``concurrency`` requests arriving together, greedy with EOS ignored."""
    from genfast.runtime.sampling import SamplingParams
    from genfast.serving.engine_core import EngineCore
    from genfast.serving.row_adapter import RowAdapter
    from genfast.serving.scheduler import SchedulerConfig
    from genfast.textdata import reference_text

    prompt_len, new = workload.prompt_lens[0], workload.output_len
    if not hasattr(runtime, "new_cache"):  # no batched row cache: each request keeps its own
        runtime = RowAdapter(runtime, prompt_len + new)
    core = EngineCore(runtime, handle.tokenizer,
                      SchedulerConfig(max_running=max_running, max_queued=concurrency,
                                      prefill_token_budget=max(512, prompt_len)), max_model_len=prompt_len + new)
    prompts = prompt_windows(handle.tokenizer(reference_text())["input_ids"], prompt_len, concurrency,
                             workload.seed).tolist()
    params = SamplingParams(max_tokens=new, temperature=0.0, ignore_eos=True)
    runs = []
    for i in range(workload.warmup + workload.repeats):
        start = time.perf_counter()
        requests = [core.add(p, params) for p in prompts]
        while core.has_work:
            core.step()
        wall = time.perf_counter() - start
        if i >= workload.warmup:
            runs.append({"wall": wall, "tokens": sum(len(r.output_ids) for r in requests),
                         "ttft": statistics.mean(r.first_token - r.arrival for r in requests)})
    wall = statistics.median(r["wall"] for r in runs)
    return {"tokens_per_s": statistics.median(r["tokens"] / r["wall"] for r in runs),
            "ttft_s": statistics.median(r["ttft"] for r in runs), "tpot_s": None, "decode_tokens_per_s": None,
            "e2e_s": wall, "roofline_fraction": None, "tokenize_share": 0.0,
            "peak_rss_bytes": memory.peak_rss_bytes()}
