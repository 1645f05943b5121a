"""Drive an endpoint at a fixed concurrency or a Poisson arrival rate and summarise what it did."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import asdict, dataclass

import httpx

from genfast.bench.client import RequestResult, stream_completion
from genfast.errors import ConfigError
from genfast.profiling.stats import summarize


@dataclass
class LoadConfig:
    """One load test."""

    url: str = "http://127.0.0.1:8000"
    model: str | None = None
    """Sent as ``model``; None: the first model the endpoint's /v1/models lists."""
    concurrency: int | None = 8
    """Requests in flight at once (closed loop). Exactly one of concurrency / rate."""
    rate: float | None = None
    """Poisson arrivals per second (open loop)."""
    requests: int = 64
    duration_s: float | None = None
    """Stop issuing new requests after this long (whichever of requests / duration comes first)."""
    warmup_requests: int = 2
    prompt_tokens: int = 64
    prompt_tokens_spread: float = 0.0
    """Prompt lengths are uniform in prompt_tokens * (1 +- spread)."""
    max_tokens: int = 64
    max_tokens_spread: float = 0.0
    ignore_eos: bool = True
    """Ask for exactly max_tokens tokens (sent as ``ignore_eos``)."""
    slo_ttft_s: float = 0.2
    slo_tpot_s: float = 0.05
    timeout_s: float = 120.0
    seed: int = 0
    version: int = 1

    def validate(self) -> None:
        if (self.concurrency is None) == (self.rate is None):
            raise ConfigError("Give exactly one of --concurrency and --rate.")
        if self.concurrency is not None and self.concurrency < 1:
            raise ConfigError(f"--concurrency must be at least 1, got {self.concurrency}.")
        if self.rate is not None and self.rate <= 0:
            raise ConfigError(f"--rate must be positive, got {self.rate}.")
        for name in ("requests", "prompt_tokens", "max_tokens"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1.")
        if not 0 <= self.prompt_tokens_spread < 1 or not 0 <= self.max_tokens_spread < 1:
            raise ConfigError("Length spreads must be in [0, 1).")


def _lengths(cfg: LoadConfig, rng: random.Random) -> tuple[int, int]:
    def draw(mean: int, spread: float) -> int:
        return max(1, round(mean * (1 + rng.uniform(-spread, spread))))

    return draw(cfg.prompt_tokens, cfg.prompt_tokens_spread), draw(cfg.max_tokens, cfg.max_tokens_spread)


class PromptSource:
    """Prompts cut from real text: exactly N tokens of ``tokenizer`` when given, else N words."""

    def __init__(self, text: str, tokenizer=None) -> None:
        self.tokenizer = tokenizer
        self.units = tokenizer(text)["input_ids"] if tokenizer else text.split()

    def make(self, n: int, rng: random.Random) -> str:
        start = rng.randrange(0, max(1, len(self.units) - n))
        window = self.units[start:start + n]
        if self.tokenizer is None:
            return " ".join(window)
        # Decoding a window and encoding it again can merge tokens at its edges; trim until exact.
        text = self.tokenizer.decode(window)
        while len(self.tokenizer(text)["input_ids"]) > n and text:
            text = text[:-1]
        return text


async def run_load(cfg: LoadConfig, prompts_from: PromptSource) -> tuple[list[RequestResult], float]:
    """Issue the requests; return their results (warm-up excluded) and the wall time."""
    cfg.validate()
    rng = random.Random(cfg.seed)
    specs = [_lengths(cfg, rng) for _ in range(cfg.requests + cfg.warmup_requests)]
    prompts = [prompts_from.make(p, rng) for p, _ in specs]
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    async with httpx.AsyncClient(limits=limits) as client:
        cfg.model = cfg.model or await served_model(client, cfg.url)
        for i in range(cfg.warmup_requests):
            await stream_completion(client, cfg.url, cfg.model, prompts[i], specs[i][1], cfg.timeout_s, cfg.ignore_eos)
        todo = list(zip(prompts[cfg.warmup_requests:], [m for _, m in specs[cfg.warmup_requests:]]))
        start = time.perf_counter()
        deadline = start + cfg.duration_s if cfg.duration_s else None
        if cfg.concurrency:
            results = await _closed_loop(client, cfg, todo, deadline)
        else:
            results = await _open_loop(client, cfg, todo, deadline, rng)
        return results, time.perf_counter() - start


async def served_model(client: httpx.AsyncClient, url: str) -> str | None:
    """The first model id of ``url``/v1/models, or None when the endpoint does not list any."""
    try:
        data = (await client.get(f"{url}/v1/models", timeout=10)).json()["data"]
        return data[0]["id"] if data else None
    except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError):
        return None


async def _closed_loop(client, cfg: LoadConfig, todo, deadline) -> list[RequestResult]:
    queue = list(reversed(todo))
    results: list[RequestResult] = []

    async def worker() -> None:
        while queue and (deadline is None or time.perf_counter() < deadline):
            prompt, max_tokens = queue.pop()
            results.append(await stream_completion(client, cfg.url, cfg.model, prompt, max_tokens, cfg.timeout_s,
                                                   cfg.ignore_eos))

    await asyncio.gather(*[worker() for _ in range(cfg.concurrency)])
    return results


async def _open_loop(client, cfg: LoadConfig, todo, deadline, rng: random.Random) -> list[RequestResult]:
    tasks = []
    for prompt, max_tokens in todo:
        if deadline is not None and time.perf_counter() >= deadline:
            break
        tasks.append(asyncio.create_task(
            stream_completion(client, cfg.url, cfg.model, prompt, max_tokens, cfg.timeout_s, cfg.ignore_eos)))
        await asyncio.sleep(rng.expovariate(cfg.rate))
    return list(await asyncio.gather(*tasks))


def summarize_load(cfg: LoadConfig, results: list[RequestResult], wall_s: float) -> dict:
    """Latency percentiles, throughput, goodput under the SLO, errors by kind."""
    ok = [r for r in results if r.ok]

    def stat(values):
        values = [v for v in values if v is not None]
        return summarize(values).to_dict() if values else None

    good = [r for r in ok if r.ttft_s <= cfg.slo_ttft_s and (r.tpot_s is None or r.tpot_s <= cfg.slo_tpot_s)]
    out_tokens = sum(r.output_tokens for r in ok)
    return {
        "schema": "genfast.bench/1",
        "config": asdict(cfg),
        "requests": {"sent": len(results), "ok": len(ok), "errors": dict(Counter(r.error for r in results if not r.ok))},
        "wall_s": wall_s,
        "ttft_s": stat(r.ttft_s for r in ok),
        "tpot_s": stat(r.tpot_s for r in ok),
        "itl_s": stat(x for r in ok for x in r.itl_s),
        "e2e_s": stat(r.e2e_s for r in ok),
        "request_throughput_per_s": len(ok) / wall_s,
        "output_tokens_per_s": out_tokens / wall_s,
        "total_tokens_per_s": (out_tokens + sum(r.prompt_tokens for r in ok)) / wall_s,
        "goodput": {"slo": {"ttft_s": cfg.slo_ttft_s, "tpot_s": cfg.slo_tpot_s},
                    "requests_per_s": len(good) / wall_s, "share": len(good) / len(results) if results else 0.0},
    }
