"""``genfast tune``: search compression x backend x runtime options for the fastest candidate inside a budget."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import typer

from genfast.cli.common import BUDGET_FAILED_EXIT, console, err_console, quiet_libraries
from genfast.errors import ConfigError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h)?\s*$")


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``20m``, ``1.5h`` -> seconds."""
    match = _DURATION.match(text)
    if not match:
        raise ConfigError(f"--time-budget {text!r} is not a duration.", "Use e.g. 20m, 90s or 1h.")
    return float(match.group(1)) * {"s": 1, "m": 60, "h": 3600}[match.group(2) or "s"]


def tune(
    model: str = typer.Option("demo", help="`demo` or a model directory (never modified)."),
    out: Path = typer.Option(Path("tuned"), "--out", "-o", help="Where the report, trials.jsonl and best/ go."),
    objective: str = typer.Option("latency", help="latency (time per output token at batch 1), ttft, or "
                                                  "throughput (output tokens/s with --concurrency streams)."),
    time_budget: str = typer.Option("8m", help="Stop after this long and report the best so far: 90s, 20m, 1h."),
    max_ppl_increase: str | None = typer.Option("2%", help="Quality budget, e.g. 1% or 0.01."),
    min_top1_agreement: str | None = typer.Option(None, help="e.g. 0.95."),
    max_kl: str | None = typer.Option(None),
    min_greedy_agreement: str | None = typer.Option(None),
    prompt_len: int = typer.Option(128, "--prompt-len", "-p", help="Prompt length in tokens."),
    new_tokens: int = typer.Option(64, "--new-tokens", "-n", help="Tokens generated per request."),
    concurrency: int = typer.Option(8, help="throughput: requests in flight together."),
    device: str = typer.Option("cpu", help="Where the model runs: cpu, cuda[:N], ... (one device per search)."),
    backend: list[str] = typer.Option([], help="Only these backends (repeatable); default: every one that runs here."),
    threads: list[int] = typer.Option([], help="Thread counts to try on the leaders (repeatable); default: "
                                               "1, powers of two and every core."),
    prune: list[str] = typer.Option(["ffn=0.25", "heads=0.25"], help="Structured pruning levels, each healed by "
                                                                     "distillation (repeatable)."),
    no_prune: bool = typer.Option(False, "--no-prune", help="Leave structured pruning out of the search."),
    heal_steps: int = typer.Option(100, help="Distillation steps healing each pruned model."),
    heal_minutes: float = typer.Option(1.0, help="Time cap of each healing run."),
    repeats: int = typer.Option(2, help="Counted runs of each candidate's screening profile."),
    finalists: int = typer.Option(3, help="Candidates timed again in interleaved final rounds."),
    rounds: int = typer.Option(5, help="Final rounds."),
    batch_size: int = typer.Option(16, help="Image generators, throughput objective: images per timed batch."),
    min_class_agreement: str | None = typer.Option(None, help="Image generators: default 0.9."),
    max_fd_increase: str | None = typer.Option(None, help="Image generators: relative, default 50%."),
    min_psnr: str | None = typer.Option(None, help="Image generators: dB against the original's image."),
    quality_images: int = typer.Option(100, help="Image generators: images drawn to verify each candidate."),
) -> None:
    """Find the fastest way to run MODEL here inside the quality budget; write it as OUT/best.
    Image generators (`demo-image`, a diffusers UNet2D directory): sampler x steps x engine x
    precision, objective throughput (images/s in batches) or latency (one image at a time)."""
    from genfast.images.source import is_image_model

    if is_image_model(model):
        from genfast.cli.image_cmds import image_budget, tune_image_cmd

        if not tune_image_cmd(model, out, objective, parse_duration(time_budget), batch_size,
                              image_budget(min_class_agreement, max_fd_increase, min_psnr), quality_images,
                              finalists, rounds, backend):
            sys.exit(BUDGET_FAILED_EXIT)
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from genfast.compress.recipe import parse_prune
    from genfast.profiling.workload import Workload
    from genfast.quality.budget import QualityBudget
    from genfast.report.tune_report import answer_line
    from genfast.tuning.search import TuneOptions, check_tune_output
    from genfast.tuning.search import tune as run_tune
    from genfast.tuning.space import SpaceOptions

    quiet_libraries()
    for spec in prune:
        parse_prune(spec)  # a bad spelling fails before any work
    options = TuneOptions(
        objective=objective, concurrency=concurrency, time_budget_s=parse_duration(time_budget),
        workload=Workload(prompt_lens=[prompt_len], output_len=new_tokens, repeats=repeats),
        budget=QualityBudget.parse(max_ppl_increase, min_top1_agreement, max_kl, min_greedy_agreement),
        space=SpaceOptions(backends=backend or None, prune=[] if no_prune else prune, heal_steps=heal_steps,
                           heal_minutes=heal_minutes, threads=threads or None, device=device),
        finalists=finalists, rounds=rounds)
    options.validate()  # bad options and outputs fail as one line, before any progress bar is drawn
    check_tune_output(out, model)

    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=err_console, transient=True) as bar:
        task = bar.add_task("loading the model and reading the space", total=0)

        def show(event: dict) -> None:
            phase = event["phase"]
            if phase == "space":
                bar.console.print(f"{event['candidates']} candidates; left out:", highlight=False, soft_wrap=True)
                for x in event["left_out"]:
                    bar.console.print(f"  - {x['axis']}: {x['reason']}", highlight=False, soft_wrap=True)
            elif phase == "screen":
                best = f" · best so far: {event['best']}" if event["best"] else ""
                bar.update(task, total=event["total"], completed=event["index"] - 1,
                           description=f"{event['label']} · {event['stage']}{best}")
            elif phase == "final":
                what = event["label"] or f"round {event['index']}/{event['total']}"
                bar.update(task, total=event["total"], completed=max(0, event["index"] - 1),
                           description=f"final: {what}")
            elif phase == "artifact":
                bar.update(task, description=f"writing the winner: {event['label']}")

        report = run_tune(model, out, options, progress=show)
    console.print(answer_line(report), highlight=False, soft_wrap=True)
    console.print(f"Report: {out / 'report.md'} (and report.json, pareto.png, trials.jsonl)", highlight=False,
                  soft_wrap=True)
    if report["winner"] is None:
        sys.exit(BUDGET_FAILED_EXIT)
    console.print(f"Artifact: {report['winner']['artifact']}  (serve it: genfast serve --model "
                  f"{report['winner']['artifact']})", highlight=False, soft_wrap=True)
