"""``genfast profile``: where a generative model spends its time."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.progress import Progress
from rich.table import Table

from genfast.cli.common import console, err_console, load_factory, quiet_libraries, set_threads
from genfast.errors import ConfigError


def _print_llm(result: dict) -> None:
    from genfast.report.tables import LATENCY_HEADERS, STAGE_HEADERS, latency_rows, model_lines, stage_rows

    for line in model_lines(result):
        console.print(line, highlight=False)
    for title, headers, rows in (("Latency (ms, medians unless named) and throughput", LATENCY_HEADERS,
                                  latency_rows(result)),
                                 ("Stages (median ms per request)", STAGE_HEADERS, stage_rows(result))):
        table = Table(title=title)
        for h in headers:
            table.add_column(h, justify="right")
        for r in rows:
            table.add_row(*r)
        console.print(table)
    for w in result["warnings"]:
        console.print(f"[yellow]warning:[/] {w}")


def _print_module(result: dict) -> None:
    table = Table(title=f"{result['model']['source']} ({result['model']['architecture']})")
    for h in ("stage", "p50 ms", "p90 ms", "p99 ms"):
        table.add_column(h, justify="right")
    rows = {**result["stages_s"], "end-to-end": result["e2e_s"]}
    for name, s in rows.items():
        table.add_row(name, *(f"{s[k] * 1e3:.3f}" for k in ("p50", "p90", "p99")))
    console.print(table)
    for w in result["warnings"]:
        console.print(f"[yellow]warning:[/] {w}")


def _profile_module(target: str, warmup: int, repeats: int) -> dict:
    from genfast.models.handle import ModuleSpec
    from genfast.profiling.module import profile_module

    spec = load_factory(target)
    if not isinstance(spec, ModuleSpec):
        raise ConfigError(f"{target} returned {type(spec).__name__}, not a genfast.ModuleSpec.")
    return profile_module(spec, warmup=warmup, repeats=repeats)


def profile(
    model: str = typer.Option("demo", help="`demo`, a local Hugging Face directory, or a hub id."),
    prompt_len: list[int] = typer.Option([128], "--prompt-len", "-p", help="Prompt length(s) in tokens; repeatable."),
    new_tokens: int = typer.Option(128, "--new-tokens", "-n", help="Tokens generated per sequence."),
    batch_size: list[int] = typer.Option([1], "--batch-size", "-b", help="Batch size(s); repeatable."),
    repeats: int = typer.Option(5, help="Counted runs per case."),
    warmup: int = typer.Option(1, help="Uncounted warm-up runs per case."),
    seed: int = typer.Option(0, help="Seed for drawing prompts from the text."),
    threads: int | None = typer.Option(None, help="torch CPU threads (default: torch's choice)."),
    device: str = typer.Option("cpu", help="cpu, cuda[:N], mps, xpu or auto."),
    dtype: str = typer.Option("fp32", help="fp32, fp16 or bf16."),
    backend: str | None = typer.Option(None, help="torch, torch-compile, hf, onnxruntime, openvino or tensorrt "
                                                  "(default: the artifact's recipe, else torch)."),
    autocast: str | None = typer.Option(None, help="torch backends: run matmuls in fp16/bf16 (mixed precision)."),
    precision: str | None = typer.Option(None, help="Backend precision: fp32; int8 (onnxruntime, openvino); int4 (openvino)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON only."),
    report: Path | None = typer.Option(None, help="Write report.md, profile.json and PNG plots here."),
    module: str | None = typer.Option(None, help="Profile FILE.py:FUNCTION returning a genfast.ModuleSpec instead."),
    steps: int | None = typer.Option(None, help="Image generators: denoising steps (default: the model's)."),
    sampler: str | None = typer.Option(None, help="Image generators: ddpm, ddim or dpm-solver (default: the model's)."),
) -> None:
    """Measure tokenize / prefill / decode / sample / detokenize, TTFT, TPOT, memory and the roofline;
    for image generators (`demo-image`, a diffusers UNet2D pipeline directory), preprocess / each
    denoising step's UNet and scheduler / postprocess and images/s."""
    from genfast.images.source import is_image_model

    if is_image_model(model) and not module:
        from genfast.cli.image_cmds import profile_image

        set_threads(threads)
        profile_image(model, batch_size, steps, sampler, backend, precision, repeats, warmup, seed, threads,
                      as_json, report)
        return
    from genfast.models.loading import recipe_runtime_options

    quiet_libraries()
    if threads is None and not module:
        threads = recipe_runtime_options(model)["threads"]
    set_threads(threads)
    if module:
        result = _profile_module(module, warmup, repeats)
        console.print_json(json.dumps(result)) if as_json else _print_module(result)
        return

    from genfast.backends.registry import build_runtime
    from genfast.models.loading import load
    from genfast.profiling.llm import profile_llm
    from genfast.profiling.workload import Workload

    workload = Workload(prompt_lens=prompt_len, output_len=new_tokens, batch_sizes=batch_size,
                        warmup=warmup, repeats=repeats, seed=seed)
    handle = load(model, device=device, dtype=dtype)
    workload.validate(handle.context_length)
    runtime = build_runtime(backend or handle.backend, handle, batch=batch_size[0],
                            max_cache_len=max(prompt_len) + new_tokens, precision=precision or handle.precision,
                            threads=threads, autocast=autocast)
    total = len(prompt_len) * len(batch_size) * (warmup + repeats)
    with Progress(console=err_console, transient=True, disable=as_json) as bar:
        task = bar.add_task("profiling", total=total)
        result = profile_llm(handle, workload, runtime=runtime, on_run=lambda: bar.advance(task))
    if report:
        from genfast.report.markdown import write_profile_report

        path = write_profile_report(result, report)
        err_console.print(f"report written to {path}")
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        _print_llm(result)
