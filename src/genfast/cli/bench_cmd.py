"""``genfast bench``: a load generator for any OpenAI-compatible endpoint."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path

import typer
from rich.table import Table

from genfast.cli.common import console, err_console


async def measure(cfg, prompts) -> dict:
    """One load level: results summarised, with the server's stage times when it is genfast."""
    import httpx

    from genfast.bench.loadgen import run_load, summarize_load
    from genfast.bench.server_stages import scrape, stage_means

    async with httpx.AsyncClient() as client:
        before = await scrape(client, cfg.url)
    results, wall = await run_load(cfg, prompts)
    async with httpx.AsyncClient() as client:
        after = await scrape(client, cfg.url)
    summary = summarize_load(cfg, results, wall)
    summary["server_stages_s"] = stage_means(before, after)
    return summary


def _ms(s: dict | None, key: str) -> str:
    return "-" if not s else f"{s[key] * 1e3:.1f}"


def _print(runs: list[dict]) -> None:
    table = Table(title="Client-side latency (ms) and throughput")
    for h in ("load", "ok/sent", "TTFT p50", "TTFT p99", "TPOT p50", "TPOT p99", "ITL p99", "E2E p50", "E2E p99",
              "req/s", "out tok/s", "goodput req/s", "errors"):
        table.add_column(h, justify="right")
    for r in runs:
        c = r["config"]
        load = f"{c['concurrency']} streams" if c["concurrency"] else f"{c['rate']} req/s"
        table.add_row(load, f"{r['requests']['ok']}/{r['requests']['sent']}", _ms(r["ttft_s"], "p50"),
                      _ms(r["ttft_s"], "p99"), _ms(r["tpot_s"], "p50"), _ms(r["tpot_s"], "p99"),
                      _ms(r["itl_s"], "p99"), _ms(r["e2e_s"], "p50"), _ms(r["e2e_s"], "p99"),
                      f"{r['request_throughput_per_s']:.2f}", f"{r['output_tokens_per_s']:.1f}",
                      f"{r['goodput']['requests_per_s']:.2f}", json.dumps(r["requests"]["errors"]) or "-")
    console.print(table)
    if any(r["server_stages_s"] for r in runs):
        stages = Table(title="Server-side mean time per request (ms): the rest of E2E is network + client")
        names = sorted({s for r in runs for s in (r["server_stages_s"] or {})})
        stages.add_column("load")
        for n in names:
            stages.add_column(n, justify="right")
        for r in runs:
            c = r["config"]
            s = r["server_stages_s"] or {}
            stages.add_row(str(c["concurrency"] or c["rate"]), *[f"{s.get(n, 0) * 1e3:.1f}" for n in names])
        console.print(stages)


def bench(
    url: str = typer.Option("http://127.0.0.1:8000", help="Base URL of an OpenAI-compatible server."),
    model: str | None = typer.Option(None, help="Model name sent in requests (default: the first one the "
                                     "endpoint's /v1/models lists)."),
    concurrency: list[int] = typer.Option([], "--concurrency", "-c", help="Streams in flight; repeat to sweep."),
    rate: list[float] = typer.Option([], "--rate", "-r", help="Poisson arrivals per second; repeat to sweep."),
    requests: int = typer.Option(64, help="Counted requests per load level."),
    duration: float | None = typer.Option(None, help="Stop a level after this many seconds."),
    warmup: int = typer.Option(2, help="Uncounted requests first."),
    prompt_tokens: int = typer.Option(64),
    prompt_spread: float = typer.Option(0.0, help="Prompt lengths uniform in mean*(1 +- spread)."),
    max_tokens: int = typer.Option(64),
    max_tokens_spread: float = typer.Option(0.0),
    ignore_eos: bool = typer.Option(True, help="Send ignore_eos, so every answer is max-tokens long (turn off "
                                    "for servers that reject unknown fields)."),
    slo_ttft_ms: float = typer.Option(200.0, help="Goodput SLO on time to first token."),
    slo_tpot_ms: float = typer.Option(50.0, help="Goodput SLO on time per output token."),
    timeout: float = typer.Option(120.0, help="Per-request timeout in seconds."),
    seed: int = typer.Option(0),
    tokenizer: str | None = typer.Option(None, help="Model (e.g. demo) whose tokenizer sizes prompts exactly; "
                                                    "default: prompt length in words."),
    as_json: bool = typer.Option(False, "--json"),
    plot: Path | None = typer.Option(None, help="Write bench.json and latency_vs_load.png here."),
) -> None:
    """Measure TTFT, TPOT, ITL, E2E, throughput and goodput under load."""
    from genfast.bench.loadgen import LoadConfig
    from genfast.errors import ConfigError
    from genfast.textdata import reference_text

    if concurrency and rate:
        raise ConfigError("Give --concurrency or --rate, not both.")
    base = LoadConfig(url=url.rstrip("/"), model=model, concurrency=None, rate=None, requests=requests,
                      duration_s=duration, warmup_requests=warmup, prompt_tokens=prompt_tokens,
                      prompt_tokens_spread=prompt_spread, max_tokens=max_tokens, max_tokens_spread=max_tokens_spread,
                      ignore_eos=ignore_eos,
                      slo_ttft_s=slo_ttft_ms / 1000, slo_tpot_s=slo_tpot_ms / 1000, timeout_s=timeout, seed=seed)
    levels = [replace(base, concurrency=c) for c in concurrency] or [replace(base, rate=r) for r in rate] or [
        replace(base, concurrency=8)]
    for cfg in levels:
        cfg.validate()
    from genfast.bench.loadgen import PromptSource

    tok = None
    if tokenizer:
        from transformers import AutoTokenizer

        from genfast.models.loading import resolve_model_path

        tok = AutoTokenizer.from_pretrained(resolve_model_path(tokenizer))
    prompts = PromptSource(reference_text(), tok)
    runs = []
    for cfg in levels:
        err_console.print(f"load: {cfg.concurrency or cfg.rate} {'streams' if cfg.concurrency else 'req/s'}")
        runs.append(asyncio.run(measure(cfg, prompts)))
    if plot:
        from genfast.bench.plots import latency_vs_load

        plot.mkdir(parents=True, exist_ok=True)
        (plot / "bench.json").write_text(json.dumps(runs, indent=2))
        latency_vs_load(runs, plot / "latency_vs_load.png")
    if as_json:
        print(json.dumps(runs, indent=2))
    else:
        _print(runs)
