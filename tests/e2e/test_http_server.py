import asyncio
import json
import time

import httpx
import pytest

from genfast.models.tiny import tiny_model
from tests.serving_helpers import POISON_TEXT, burst, running_server


@pytest.fixture(scope="module")
def server(tokenizer):
    model, _ = tiny_model("llama", tokenizer)
    with running_server(model, tokenizer, max_running=4, max_queued=64) as (base, srv):
        yield base, srv


def _sse_events(response) -> list:
    out = []
    for line in response.iter_lines():
        if line.startswith("data: "):
            data = line[len("data: "):]
            out.append(data if data == "[DONE]" else json.loads(data))
    return out


def test_health_and_models(server):
    base, _ = server
    assert httpx.get(f"{base}/health").json() == {"status": "ok"}
    models = httpx.get(f"{base}/v1/models").json()
    assert models["data"][0]["id"] == "tiny"


def test_completion_with_usage(server):
    base, _ = server
    r = httpx.post(f"{base}/v1/completions", json={"prompt": "def add(a, b):", "max_tokens": 7,
                                                   "temperature": 0, "ignore_eos": True})
    assert r.status_code == 200
    body = r.json()
    assert body["object"] == "text_completion"
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 7
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + 7


def test_streaming_matches_non_streaming_and_ends_with_done(server):
    base, _ = server
    req = {"prompt": "import os\n", "max_tokens": 9, "temperature": 0, "ignore_eos": True}
    full = httpx.post(f"{base}/v1/completions", json=req).json()["choices"][0]["text"]
    with httpx.stream("POST", f"{base}/v1/completions",
                      json={**req, "stream": True, "stream_options": {"include_usage": True}}) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        events = _sse_events(r)
    assert events[-1] == "[DONE]"
    usage = events[-2]
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] == 9
    assert "".join(e["choices"][0]["text"] for e in events[:-2]) == full
    assert events[-3]["choices"][0]["finish_reason"] == "length"


def test_openai_client_completions_and_chat(server):
    openai = pytest.importorskip("openai")
    base, _ = server
    client = openai.OpenAI(base_url=f"{base}/v1", api_key="unused")
    c = client.completions.create(model="tiny", prompt="class A:", max_tokens=5, temperature=0)
    assert c.usage.completion_tokens <= 5 and c.choices[0].finish_reason in ("stop", "length")
    chat = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "hi"}],
                                          max_tokens=6, temperature=0)
    assert chat.choices[0].message.role == "assistant"
    stream = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "hi"}],
                                            max_tokens=6, temperature=0, stream=True)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text == chat.choices[0].message.content


@pytest.mark.parametrize("payload, status, fragment", [
    ({"prompt": "x " * 300, "max_tokens": 10}, 400, "exceeds the context"),
    ({"prompt": "x", "max_tokens": "many"}, 400, "max_tokens"),
    ({"prompt": "x", "temperature": 9}, 400, "temperature"),
    ({"prompt": "x", "n": 3}, 400, "n"),
    ({"max_tokens": 3}, 400, "prompt"),
])
def test_bad_requests_get_openai_errors(server, payload, status, fragment):
    base, _ = server
    r = httpx.post(f"{base}/v1/completions", json=payload)
    assert r.status_code == status
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error" and fragment in err["message"]


def test_malformed_json(server):
    base, _ = server
    r = httpx.post(f"{base}/v1/completions", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and "error" in r.json()


def test_one_failing_request_fails_alone(server):
    base, _ = server

    async def both():
        async with httpx.AsyncClient(timeout=30) as client:
            return await asyncio.gather(
                client.post(f"{base}/v1/completions", json={"prompt": f"{POISON_TEXT} + 1", "max_tokens": 5}),
                client.post(f"{base}/v1/completions", json={"prompt": "y = 1", "max_tokens": 5, "temperature": 0}))

    bad, good = asyncio.run(both())
    assert bad.status_code == 500 and "injected failure" in bad.json()["error"]["message"]
    assert good.status_code == 200
    assert httpx.get(f"{base}/health").status_code == 200


def test_disconnect_frees_the_slot(server):
    base, srv = server
    with httpx.stream("POST", f"{base}/v1/completions",
                      json={"prompt": "def", "max_tokens": 100, "temperature": 0, "ignore_eos": True,
                            "stream": True}) as r:
        for line in r.iter_lines():
            if line.startswith("data: "):
                break  # leave after the first chunk
    deadline = time.monotonic() + 10
    while srv.engine.core.running and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not srv.engine.core.running


def test_metrics_exposes_server_figures(server):
    base, _ = server
    httpx.post(f"{base}/v1/completions", json={"prompt": "a", "max_tokens": 3})
    text = httpx.get(f"{base}/metrics").text
    for name in ("genfast_requests_total", "genfast_ttft_seconds_bucket", "genfast_tpot_seconds",
                 "genfast_e2e_seconds", "genfast_queue_time_seconds", "genfast_running_sequences",
                 "genfast_queued_requests", "genfast_batch_size", "genfast_generated_tokens_total",
                 "genfast_tokens_per_second", 'genfast_stage_seconds_count{model_name="tiny",stage="prefill"}',
                 'stage="tokenize"', 'stage="detokenize"', 'stage="queue"', 'stage="decode"',
                 "genfast_kv_cache_rows_usage", "genfast_kv_cache_positions_usage",
                 "genfast_request_prompt_tokens_bucket", "genfast_request_generation_tokens_bucket",
                 'genfast_http_responses_total{code="200",model_name="tiny"}'):
        assert name in text, name


def test_queue_full_gets_429_with_retry_after(tokenizer):
    model, _ = tiny_model("gpt2", tokenizer)
    with running_server(model, tokenizer, max_running=1, max_queued=1) as (base, _):
        statuses = burst(base, 6, {"prompt": "a", "max_tokens": 60, "ignore_eos": True, "temperature": 0})
    codes = sorted(r.status_code for r in statuses)
    assert 200 in codes and 429 in codes
    limited = next(r for r in statuses if r.status_code == 429)
    assert limited.headers["retry-after"] == "1"
    assert limited.json()["error"]["type"] == "rate_limit_error"
