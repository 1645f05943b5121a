import json

import pytest

from genfast.bench.server_stages import _parse, stage_means
from genfast.models.tiny import tiny_model
from tests.e2e.test_cli_profile import run_cli
from tests.serving_helpers import free_port, running_server


@pytest.fixture(scope="module")
def server(tokenizer):
    model, _ = tiny_model("llama", tokenizer)
    with running_server(model, tokenizer, max_running=4) as (base, srv):
        yield base


def test_bench_sweep_against_genfast_server(server, tmp_path, capsys):
    code, out, _ = run_cli(["bench", "--url", server, "--model", "tiny", "-c", "1", "-c", "3", "--requests", "6",
                            "--warmup", "1", "--prompt-tokens", "8", "--max-tokens", "8", "--slo-ttft-ms", "10000",
                            "--slo-tpot-ms", "10000", "--json", "--plot", str(tmp_path)], capsys)
    assert code == 0
    runs = json.loads(out)
    assert [r["config"]["concurrency"] for r in runs] == [1, 3]
    for r in runs:
        assert r["requests"] == {"sent": 6, "ok": 6, "errors": {}}
        assert r["ttft_s"]["p50"] <= r["e2e_s"]["p50"]
        assert r["output_tokens_per_s"] > 0
        assert r["goodput"]["share"] == 1.0  # a generous SLO: every request is good
        assert {"queue", "prefill", "decode", "detokenize", "tokenize"} <= set(r["server_stages_s"])
    assert (tmp_path / "latency_vs_load.png").stat().st_size > 0
    assert json.loads((tmp_path / "bench.json").read_text())[0]["schema"] == "genfast.bench/1"


def test_poisson_rate_and_tight_slo(server, capsys):
    code, out, _ = run_cli(["bench", "--url", server, "-r", "20", "--requests", "5", "--warmup", "0",
                            "--max-tokens", "4", "--prompt-tokens", "8", "--slo-ttft-ms", "0.001", "--json"], capsys)
    assert code == 0
    run = json.loads(out)[0]
    assert run["requests"]["ok"] == 5 and run["goodput"]["requests_per_s"] == 0


def test_errors_are_counted_by_kind(capsys):
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    code, out, _ = run_cli(["bench", "--url", url, "-c", "2", "--requests", "3", "--warmup", "0", "--json"], capsys)
    assert code == 0
    run = json.loads(out)[0]
    assert run["requests"]["ok"] == 0 and run["requests"]["errors"] == {"ConnectError": 3}
    assert run["server_stages_s"] is None


def test_concurrency_and_rate_together_is_an_error(capsys):
    code, _, err = run_cli(["bench", "-c", "2", "-r", "3"], capsys)
    assert code == 1 and "not both" in err


def test_stage_means_from_metric_text():
    text = ('# TYPE genfast_stage_seconds histogram\n'
            'genfast_stage_seconds_sum{stage="prefill"} 3.0\ngenfast_stage_seconds_count{stage="prefill"} 4.0\n')
    before = {"prefill": (1.0, 2.0)}
    assert stage_means(before, _parse(text)) == {"prefill": 1.0}
    assert stage_means(None, _parse(text)) is None


def test_prompts_have_exact_token_length(tokenizer):
    import random

    from genfast.bench.loadgen import PromptSource
    from genfast.textdata import stdlib_text

    source = PromptSource(stdlib_text(), tokenizer)
    rng = random.Random(0)
    lengths = [len(tokenizer(source.make(32, rng))["input_ids"]) for _ in range(20)]
    assert all(30 <= n <= 32 for n in lengths) and lengths.count(32) >= 10


@pytest.mark.parametrize("ignore_eos", [True, False])
def test_ignore_eos_is_sent_only_when_asked(ignore_eos):
    """Servers that reject unknown fields (`transformers serve`) are measured with --no-ignore-eos."""
    import asyncio

    import httpx

    from genfast.bench.client import stream_completion

    bodies = []

    def answer(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        chunks = [{"choices": [{"text": "a"}]}, {"choices": [{"text": "b"}]},
                  {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}}]
        return httpx.Response(200, text="".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n")

    async def one():
        async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
            return await stream_completion(client, "http://x", "m", "hi", 2, 5.0, ignore_eos=ignore_eos)

    result = asyncio.run(one())
    assert result.ok and result.output_tokens == 2 and len(result.itl_s) == 1
    assert ("ignore_eos" in bodies[0]) is ignore_eos
