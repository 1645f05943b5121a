"""Run a real genfast HTTP server on 127.0.0.1 in a background thread."""

from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager

import httpx
import uvicorn

from genfast.runtime.torch_runtime import TorchRuntime
from genfast.serving.app import OpenAIServer
from genfast.serving.async_engine import AsyncEngine
from genfast.serving.engine_core import EngineCore
from genfast.serving.http_limits import HttpLimits, guarded_http_protocol
from genfast.serving.metrics import ServingMetrics
from genfast.serving.scheduler import SchedulerConfig

POISON_TEXT = "POISON"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PoisonableRuntime(TorchRuntime):
    """Fails the prefill of any prompt that contains the poison token sequence."""

    poison: list[int] = []

    def prefill(self, input_ids, cache=None):
        ids = input_ids[0].tolist()
        n = len(self.poison)
        if n and any(ids[i:i + n] == self.poison for i in range(len(ids) - n + 1)):
            raise RuntimeError("injected failure")
        return super().prefill(input_ids, cache)


@contextmanager
def running_server(model, tokenizer, limits: HttpLimits | None = None, token_healing: bool = True, **scheduler):
    """A genfast server on 127.0.0.1 in a thread: (base URL, OpenAIServer)."""
    runtime = PoisonableRuntime(model, max_cache_len=256)
    runtime.poison = tokenizer(POISON_TEXT)["input_ids"]
    core = EngineCore(runtime, tokenizer, SchedulerConfig(**scheduler))
    limits = limits or HttpLimits()
    metrics = ServingMetrics("tiny")
    server = OpenAIServer(AsyncEngine(core, metrics), tokenizer, "tiny", request_timeout_s=30,
                          limits=limits, token_healing=token_healing)
    with serving(server, limits) as base:
        yield base, server


@contextmanager
def serving(server, limits: HttpLimits, ready_within_s: float = 60):
    """``server`` (an OpenAIServer or ImageServer) under uvicorn in a thread until /health says ok:
    its base URL."""
    port = free_port()
    uv = uvicorn.Server(uvicorn.Config(server.build(), host="127.0.0.1", port=port, log_level="warning",
                                       http=guarded_http_protocol(limits, server.metrics.count_response),
                                       timeout_keep_alive=limits.keep_alive_s))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + ready_within_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    else:
        raise RuntimeError(f"server did not become ready: {getattr(server, 'load_error', None)}")
    try:
        yield base
    finally:
        uv.should_exit = True
        thread.join(timeout=15)


def burst(base: str, count: int, body: dict, path: str = "/v1/completions") -> list[httpx.Response]:
    """``count`` copies of one request, sent at once."""
    import asyncio

    async def send():
        async with httpx.AsyncClient(timeout=60) as client:
            return await asyncio.gather(*[client.post(f"{base}{path}", json=body) for _ in range(count)])

    return list(asyncio.run(send()))


def stream_gaps_in_background(base: str, max_tokens: int) -> tuple[threading.Thread, list[float]]:
    """A started thread streaming one greedy completion; the list fills with its inter-chunk gaps (s)."""
    gaps: list[float] = []

    def stream() -> None:
        body = {"prompt": "def", "max_tokens": max_tokens, "ignore_eos": True, "temperature": 0, "stream": True}
        with httpx.stream("POST", f"{base}/v1/completions", json=body, timeout=60) as r:
            last = time.monotonic()
            for line in r.iter_lines():
                if line.startswith("data: "):
                    gaps.append(time.monotonic() - last)
                    last = time.monotonic()

    thread = threading.Thread(target=stream)
    thread.start()
    return thread, gaps
