"""One streamed request against an OpenAI-compatible endpoint, timed from the client side."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import httpx


@dataclass
class RequestResult:
    ok: bool
    error: str | None = None
    ttft_s: float | None = None
    e2e_s: float | None = None
    itl_s: list[float] = field(default_factory=list)
    prompt_tokens: int = 0
    output_tokens: int = 0
    start: float = 0.0

    @property
    def tpot_s(self) -> float | None:
        if self.ttft_s is None or self.e2e_s is None or self.output_tokens < 2:
            return None
        return (self.e2e_s - self.ttft_s) / (self.output_tokens - 1)


async def stream_completion(client: httpx.AsyncClient, url: str, model: str | None, prompt: str,
                            max_tokens: int, timeout_s: float, ignore_eos: bool = True) -> RequestResult:
    """POST a streamed completion with usage; time first chunk, each chunk, and the end.

    ``ignore_eos``: ask for exactly ``max_tokens`` (vLLM's and llama.cpp's field; servers that reject
    unknown fields, such as `transformers serve`, need False)."""
    body = {**({"model": model} if model else {}), "prompt": prompt, "max_tokens": max_tokens, "temperature": 0,
            **({"ignore_eos": True} if ignore_eos else {}), "stream": True, "stream_options": {"include_usage": True}}
    start = time.perf_counter()
    result = RequestResult(ok=False, start=start)
    last = None
    try:
        async with client.stream("POST", f"{url}/v1/completions", json=body, timeout=timeout_s) as r:
            if r.status_code != 200:
                result.error = f"http_{r.status_code}"
                await r.aread()
                return result
            async for line in r.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                payload = json.loads(line[6:])
                if "error" in payload:
                    result.error = "stream_error"
                    return result
                now = time.perf_counter()
                if payload.get("usage"):
                    result.prompt_tokens = payload["usage"]["prompt_tokens"]
                    result.output_tokens = payload["usage"]["completion_tokens"]
                if payload.get("choices") and payload["choices"][0].get("text"):
                    if last is None:
                        result.ttft_s = now - start
                    else:
                        result.itl_s.append(now - last)
                    last = now
    except httpx.TimeoutException:
        result.error = "timeout"
        return result
    except httpx.HTTPError as exc:
        result.error = type(exc).__name__
        return result
    result.e2e_s = time.perf_counter() - start
    result.ok = result.ttft_s is not None
    if not result.ok:
        result.error = "no_tokens"
    return result
