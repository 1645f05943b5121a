"""Profile a causal LM: per-stage latency, TTFT, TPOT, ITL, throughput, memory, roofline."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from genfast.models.handle import ModelHandle
from genfast.profiling import memory
from genfast.profiling.hardware import hardware_facts, memory_read_bandwidth
from genfast.profiling.stats import summarize
from genfast.profiling.timer import DECODE_FORWARD, DETOKENIZE, PREFILL, SAMPLE, STAGES, TOKENIZE, StageTimer
from genfast.profiling.workload import Workload, prompt_windows
from genfast.runtime.base import Runtime
from genfast.runtime.generate import generate
from genfast.textdata import reference_text

SCHEMA = "genfast.profile/1"


def _one_run(handle: ModelHandle, runtime: Runtime, texts: list[str], ids: torch.Tensor,
             output_len: int) -> tuple[StageTimer, float]:
    """One timed request: tokenize -> prefill -> decode steps -> detokenize."""
    timer = StageTimer(runtime.device)
    start = time.perf_counter()
    with timer.stage(TOKENIZE):
        handle.tokenizer(texts)
        # The text's own tokens can differ from the window at its edges; the model gets
        # the exact window so every run has the requested prompt length.
        model_input = ids.to(runtime.device)
    new_tokens = generate(runtime, model_input, output_len, timer=timer)
    with timer.stage(DETOKENIZE):
        handle.tokenizer.batch_decode(new_tokens.tolist())
    return timer, time.perf_counter() - start


def _run_metrics(timer: StageTimer, e2e: float, batch: int, output_len: int) -> dict:
    samples = timer.events[SAMPLE]
    ttft = timer.total(TOKENIZE) + timer.total(PREFILL) + samples[0]
    steps = [f + s for f, s in zip(timer.events.get(DECODE_FORWARD, []), samples[1:])]
    tpot = sum(steps) / len(steps) if steps else float("nan")
    return {
        "e2e": e2e, "ttft": ttft, "tpot": tpot, "itl": steps,
        "stages": {name: timer.total(name) for name in STAGES},
        "tokens_per_s": batch * output_len / e2e,
        "decode_tokens_per_s": batch / tpot if steps else float("nan"),
    }


def _roofline(model: torch.nn.Module, runtime: Runtime, batch: int, prompt_len: int, output_len: int,
              decode_tps: float, bandwidth: float) -> dict:
    # A runtime that stores weights its own way (an int8 ONNX graph) says how many bytes a step reads.
    per_step = getattr(runtime, "weight_bytes_per_step", None) or memory.weight_bytes_read_per_step(model)
    ceiling = batch * bandwidth / per_step
    roofline = {"weight_bytes_per_step": per_step, "ceiling_decode_tokens_per_s": ceiling,
                "achieved_fraction": decode_tps / ceiling, "kv_bytes_per_step": None,
                "ceiling_with_kv_decode_tokens_per_s": None, "achieved_fraction_with_kv": None}
    per_token = memory.kv_cache_bytes_per_token(model)
    if per_token:  # every row attends over its prompt and what it generated: prompt + output/2 on average
        kv = int(batch * per_token * (prompt_len + output_len / 2))
        with_kv = batch * bandwidth / (per_step + kv)
        roofline.update(kv_bytes_per_step=kv, ceiling_with_kv_decode_tokens_per_s=with_kv,
                        achieved_fraction_with_kv=decode_tps / with_kv)
    return roofline


def profile_case(handle: ModelHandle, runtime: Runtime, token_ids: list[int], prompt_len: int,
                 batch: int, workload: Workload, bandwidth: float,
                 on_run: Callable[[], None] | None = None, load_peak: int = 0) -> dict:
    """Measure one (prompt length, batch size) case: warm-up, then ``repeats`` counted runs.

    ``load_peak``: the process's peak RSS before profiling (loading and building the runtime);
    the runs' own peak is measured apart where the OS can restart the count."""
    ids = prompt_windows(token_ids, prompt_len, batch, workload.seed)
    texts = handle.tokenizer.batch_decode(ids.tolist())
    if runtime.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(runtime.device)
    run_peak_apart = memory.reset_peak_rss()
    runs = []
    for i in range(workload.warmup + workload.repeats):
        timer, e2e = _one_run(handle, runtime, texts, ids, workload.output_len)
        if i >= workload.warmup:
            runs.append(_run_metrics(timer, e2e, batch, workload.output_len))
        if on_run:
            on_run()
    e2e = summarize([r["e2e"] for r in runs])
    stage_sum = [sum(r["stages"].values()) / r["e2e"] for r in runs]
    decode_tps = summarize([r["decode_tokens_per_s"] for r in runs]) if workload.output_len > 1 else None
    run_peak = memory.peak_rss_bytes()  # read once: a second reading may be a page higher
    return {
        "prompt_len": prompt_len, "batch_size": batch, "output_len": workload.output_len,
        "e2e_s": e2e.to_dict(),
        "ttft_s": summarize([r["ttft"] for r in runs]).to_dict(),
        "tpot_s": summarize([r["tpot"] for r in runs]).to_dict() if decode_tps else None,
        "itl_s": summarize([x for r in runs for x in r["itl"]]).to_dict() if decode_tps else None,
        "stages_s": {name: summarize([r["stages"][name] for r in runs]).to_dict() for name in STAGES},
        "stage_sum_fraction": float(torch.tensor(stage_sum).median()),
        "tokens_per_s": summarize([r["tokens_per_s"] for r in runs]).to_dict(),
        "decode_tokens_per_s": decode_tps.to_dict() if decode_tps else None,
        "memory": {"peak_rss_bytes": max(run_peak, load_peak),
                   "peak_rss_load_bytes": load_peak,
                   "peak_rss_run_bytes": run_peak if run_peak_apart else None,
                   "cuda_peak_bytes": memory.cuda_peak_bytes(runtime.device)},
        "roofline": (_roofline(handle.model, runtime, batch, prompt_len, workload.output_len, decode_tps.median,
                               bandwidth) if decode_tps else None),
        "noisy": e2e.noisy,
        "itl_samples_s": [x for r in runs for x in r["itl"]],
    }


def profile_llm(handle: ModelHandle, workload: Workload | None = None, runtime: Runtime | None = None,
                text: str | None = None, on_run: Callable[[], None] | None = None) -> dict:
    """Profile ``handle`` on every case of ``workload``; returns the JSON-ready result."""
    from genfast.runtime.torch_runtime import TorchRuntime

    load_peak = memory.peak_rss_bytes()  # before the bandwidth probe's buffers
    workload = workload or Workload()
    workload.validate(handle.context_length)
    runtime = runtime or TorchRuntime(handle.model)
    token_ids = handle.tokenizer(text or reference_text())["input_ids"]
    bandwidth = memory_read_bandwidth(runtime.device)
    cases = [profile_case(handle, runtime, token_ids, p, b, workload, bandwidth, on_run, load_peak)
             for p in workload.prompt_lens for b in workload.batch_sizes]
    warnings = [
        f"prompt {c['prompt_len']} x batch {c['batch_size']}: end-to-end varied by "
        f"{c['e2e_s']['cv']:.0%} (CV) between runs; the machine is noisy, raise --repeats or close other work."
        for c in cases if c["noisy"]
    ]
    model = handle.model
    return {
        "schema": SCHEMA,
        "model": {
            "source": handle.source,
            "architecture": type(model).__name__,
            "parameters": memory.parameter_count(model),
            "weight_bytes": memory.weight_bytes(model),
            "dtype": str(handle.dtype).removeprefix("torch."),
            "device": str(runtime.device),
            "context_length": handle.context_length,
            "recipe": handle.recipe,
        },
        "runtime": {"backend": getattr(runtime, "name", type(runtime).__name__),
                    "compile_time_s": getattr(runtime, "compile_time_s", None)},
        "hardware": {**hardware_facts(runtime.device), "memory_read_bandwidth_gbs": bandwidth / 1e9},
        "workload": {"prompt_lens": workload.prompt_lens, "output_len": workload.output_len,
                     "batch_sizes": workload.batch_sizes, "warmup": workload.warmup,
                     "repeats": workload.repeats, "seed": workload.seed},
        "cases": cases,
        "warnings": warnings,
    }
