"""The OpenAI completions surface over HTTP: every parameter honoured or refused by name."""

import json

import httpx
import pytest

from genfast.models.tiny import tiny_model
from tests.serving_helpers import burst, running_server


@pytest.fixture(scope="module")
def server(tokenizer):
    model, _ = tiny_model("llama", tokenizer)
    with running_server(model, tokenizer, max_running=4, max_queued=8) as (base, srv):
        yield base, srv


def post(base, path="/v1/completions", **body):
    return httpx.post(f"{base}{path}", json=body, timeout=60)


def stream_text(base, **body) -> tuple[str, list[dict]]:
    with httpx.stream("POST", f"{base}/v1/completions", json={**body, "stream": True}, timeout=60) as r:
        events = [json.loads(line[6:]) for line in r.iter_lines()
                  if line.startswith("data: ") and line != "data: [DONE]"]
    return "".join(e["choices"][0]["text"] for e in events if e.get("choices")), events


GREEDY = {"max_tokens": 40, "temperature": 0, "ignore_eos": True, "model": "tiny"}


def test_streamed_and_whole_text_agree_for_stop_strings_that_span_tokens(server, tokenizer):
    base, _ = server
    prompt = "def add(a, b):\n"
    full = post(base, prompt=prompt, **GREEDY).json()["choices"][0]["text"]
    ids = tokenizer(full)["input_ids"]
    assert len(ids) > 12, full
    # stop strings made of the end of one token and the start of the next, at several places
    stops = []
    for i in (3, 6, 9, 12):
        a, b = tokenizer.decode(ids[i - 1:i]), tokenizer.decode(ids[i:i + 1])
        stops.append(a[-2:] + b[:2] if len(a) > 1 and len(b) > 1 else a + b)
    for stop in stops:
        whole = post(base, prompt=prompt, stop=stop, **GREEDY).json()["choices"][0]
        streamed, _ = stream_text(base, prompt=prompt, stop=stop, **GREEDY)
        assert whole["text"] == full[:full.find(stop)] and whole["finish_reason"] == "stop", stop
        assert streamed == whole["text"], stop


def test_prompt_ending_in_a_space_is_healed(server, tokenizer):
    base, _ = server
    healed = post(base, prompt="def ", max_tokens=6, temperature=0).json()["choices"][0]["text"]
    assert not healed.startswith(" ")  # the prompt's space is not repeated
    ids, allowed = __import__("genfast.runtime.healing", fromlist=["heal"]).heal(tokenizer, "def ")
    assert ids == tokenizer("def")["input_ids"] and allowed is not None


def test_token_healing_can_be_turned_off(tokenizer):
    model, _ = tiny_model("llama", tokenizer)
    with running_server(model, tokenizer, token_healing=False) as (base, srv):
        r = post(base, prompt="def ", max_tokens=3, temperature=0)
        assert r.json()["usage"]["prompt_tokens"] == len(tokenizer("def ")["input_ids"])


def test_completion_logprobs(server):
    base, _ = server
    body = post(base, prompt="def f(x):\n", max_tokens=5, logprobs=3, **{k: v for k, v in GREEDY.items()
                                                                           if k != "max_tokens"}).json()
    lp = body["choices"][0]["logprobs"]
    assert len(lp["tokens"]) == len(lp["token_logprobs"]) == len(lp["top_logprobs"]) == 5
    text = body["choices"][0]["text"]
    assert all(t in text or t.startswith("token_id:") for t in lp["tokens"])  # half a character: by id
    for value, top in zip(lp["token_logprobs"], lp["top_logprobs"], strict=True):
        assert value <= 0 and len(top) == 3
        assert max(top.values()) == pytest.approx(value, abs=1e-5)  # greedy: the chosen token is the top one
    assert lp["text_offset"][0] == 0 and lp["text_offset"] == sorted(lp["text_offset"])


def test_streamed_logprobs_match(server):
    base, _ = server
    body = {"prompt": "x = ", "max_tokens": 4, "logprobs": 1, "temperature": 0, "ignore_eos": True}
    whole = post(base, **body).json()["choices"][0]["logprobs"]["token_logprobs"]
    _, events = stream_text(base, **body)
    streamed = [v for e in events if e["choices"][0]["logprobs"] for v in e["choices"][0]["logprobs"]["token_logprobs"]]
    assert streamed == pytest.approx(whole, abs=1e-5)


def test_chat_logprobs(server):
    base, _ = server
    body = post(base, "/v1/chat/completions", messages=[{"role": "user", "content": "hi"}], max_tokens=4,
                temperature=0, logprobs=True, top_logprobs=2, ignore_eos=True).json()
    content = body["choices"][0]["logprobs"]["content"]
    assert len(content) == 4 and all(len(c["top_logprobs"]) == 2 and c["logprob"] <= 0 for c in content)
    assert b"".join(bytes(c["bytes"]) for c in content).decode("utf-8", "replace") == \
        body["choices"][0]["message"]["content"]
    assert content[0]["bytes"] == list(content[0]["token"].encode())


def test_echo_with_zero_tokens_scores_the_prompt(server, tokenizer):
    base, srv = server
    prompt = "def add(a, b):\n    return a + b\n"
    body = post(base, prompt=prompt, max_tokens=0, echo=True, logprobs=0).json()
    choice = body["choices"][0]
    assert choice["text"] == prompt and body["usage"]["completion_tokens"] == 0
    lp = choice["logprobs"]
    ids = tokenizer(prompt)["input_ids"]
    assert len(lp["token_logprobs"]) == len(ids) and lp["token_logprobs"][0] is None
    # the same log-likelihood as a full forward of the model
    import torch
    logits = srv.engine.core.runtime.logits(torch.tensor([ids]))[0].float()
    expected = torch.log_softmax(logits[:-1], -1).gather(1, torch.tensor(ids[1:])[:, None]).sum().item()
    assert sum(lp["token_logprobs"][1:]) == pytest.approx(expected, rel=1e-4)


def test_echo_prepends_the_prompt(server):
    base, _ = server
    whole = post(base, prompt="x = 1\n", echo=True, max_tokens=3, temperature=0).json()["choices"][0]["text"]
    streamed, _ = stream_text(base, prompt="x = 1\n", echo=True, max_tokens=3, temperature=0)
    assert whole.startswith("x = 1\n") and streamed == whole


def test_prompt_as_token_ids(server, tokenizer):
    base, _ = server
    ids = tokenizer("class A:")["input_ids"]
    as_ids = post(base, prompt=ids, **GREEDY).json()
    as_nested = post(base, prompt=[ids], **GREEDY).json()
    assert as_ids["usage"]["prompt_tokens"] == len(ids)
    assert as_ids["choices"][0]["text"] == as_nested["choices"][0]["text"]
    bad = post(base, prompt=[10**7])
    assert bad.status_code == 400 and "outside the vocabulary" in bad.json()["error"]["message"]


def test_chat_content_as_text_parts(server):
    base, _ = server
    plain = post(base, "/v1/chat/completions", messages=[{"role": "user", "content": "hello there"}], **GREEDY)
    parts = post(base, "/v1/chat/completions", messages=[{"role": "user", "content": [
        {"type": "text", "text": "hello "}, {"type": "text", "text": "there"}]}], **GREEDY)
    assert parts.status_code == 200
    assert parts.json()["choices"][0]["message"] == plain.json()["choices"][0]["message"]
    image = post(base, "/v1/chat/completions", messages=[{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "http://x"}}]}])
    assert image.status_code == 400 and image.json()["error"]["param"] == "messages"


def test_logit_bias_and_penalties(server):
    base, _ = server
    free = post(base, prompt="x", **GREEDY).json()["choices"][0]["text"]
    forced = post(base, prompt="x", logit_bias={"65": 100}, **GREEDY).json()
    assert forced["choices"][0]["logprobs"] is None
    ids = forced["choices"][0]["text"]
    assert ids and ids != free
    penalised = post(base, prompt="x", frequency_penalty=2.0, presence_penalty=2.0, **GREEDY).json()
    assert penalised["choices"][0]["text"] != free


@pytest.mark.parametrize("extra, param", [
    ({"best_of": 3}, "best_of"), ({"suffix": "end"}, "suffix"), ({"tools": [{"type": "function"}]}, "tools"),
    ({"response_format": {"type": "json_object"}}, "response_format"), ({"frobnicate": 1}, "frobnicate"),
    ({"logit_bias": {"a": 1}}, "logit_bias"), ({"seed": 2**70}, "seed"), ({"stop": ["a"] * 5}, "stop"),
    ({"logprobs": 9}, "logprobs"), ({"max_tokens": 0}, None),
])
def test_unsupported_parameters_are_refused_by_name(server, extra, param):
    base, _ = server
    path = "/v1/chat/completions" if "tools" in extra or "response_format" in extra else "/v1/completions"
    body = {"messages": [{"role": "user", "content": "x"}]} if path.endswith("chat/completions") else {"prompt": "x"}
    r = post(base, path, **body, **extra)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["type"] == "invalid_request_error"
    if param:
        assert error["param"] == param and param in error["message"]


def test_unknown_model_is_404(server):
    base, _ = server
    r = post(base, prompt="x", model="gpt-4")
    assert r.status_code == 404
    assert r.json()["error"] == {"message": r.json()["error"]["message"], "type": "not_found_error",
                                 "param": "model", "code": "model_not_found"}


@pytest.mark.parametrize("text", ["\ud800", "ok \udfff"])
def test_lone_surrogates_are_400_not_500(server, text):
    base, _ = server
    raw = json.dumps({"prompt": text, "max_tokens": 2}).encode()  # json.dumps escapes them as \\ud800
    r = httpx.post(f"{base}/v1/completions", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 400 and "surrogate" in r.json()["error"]["message"]
    chat = json.dumps({"messages": [{"role": "user", "content": text}]}).encode()
    r = httpx.post(f"{base}/v1/chat/completions", content=chat, headers={"content-type": "application/json"})
    assert r.status_code == 400 and "surrogate" in r.json()["error"]["message"]


def test_a_burst_that_fits_the_free_rows_gets_no_429(tokenizer):
    model, _ = tiny_model("gpt2", tokenizer)
    with running_server(model, tokenizer, max_running=10, max_queued=1) as (base, _):
        body = {"prompt": "a", "max_tokens": 20, "ignore_eos": True, "temperature": 0}
        codes = [r.status_code for r in burst(base, 10, body)]
    assert codes == [200] * 10


def test_seed_makes_sampling_reproducible(server):
    base, _ = server
    body = {"prompt": "x", "max_tokens": 8, "temperature": 1.5, "seed": 2**62, "ignore_eos": True}
    assert post(base, **body).json()["choices"][0]["text"] == post(base, **body).json()["choices"][0]["text"]


def test_streamed_echo_carries_the_prompt_logprobs(server):
    base, _ = server
    body = {"prompt": "x y z", "max_tokens": 2, "echo": True, "logprobs": 1, "temperature": 0, "ignore_eos": True}
    whole = post(base, **body).json()["choices"][0]["logprobs"]
    _, events = stream_text(base, **body)
    streamed = {"tokens": [], "token_logprobs": [], "text_offset": []}
    for event in events:
        lp = event["choices"][0]["logprobs"] if event.get("choices") else None
        for key in streamed:
            streamed[key] += lp[key] if lp else []
    assert streamed["tokens"] == whole["tokens"] and streamed["text_offset"] == whole["text_offset"]
    assert streamed["token_logprobs"][0] is None
    assert streamed["token_logprobs"][1:] == pytest.approx(whole["token_logprobs"][1:], abs=1e-5)


def test_text_offsets_count_characters_not_token_names(server):
    base, _ = server
    lp = post(base, prompt="a日b", max_tokens=0, echo=True, logprobs=0).json()["choices"][0]["logprobs"]
    assert lp["text_offset"] == sorted(lp["text_offset"]) and lp["text_offset"][-1] <= len("a日b") - 1


def test_chat_logprob_bytes_are_the_tokens_own(server, tokenizer):
    base, _ = server
    from genfast.serving.token_bytes import token_bytes

    partial = next(i for i in range(len(tokenizer)) if "\ufffd" in tokenizer.decode([i]))
    body = post(base, "/v1/chat/completions", messages=[{"role": "user", "content": "x"}], max_tokens=1,
                logprobs=True, logit_bias={str(partial): 100}).json()
    entry = body["choices"][0]["logprobs"]["content"][0]
    assert entry["token"] == f"token_id:{partial}" and bytes(entry["bytes"]) == token_bytes(tokenizer, partial)
    assert len(entry["bytes"]) == 1


def test_healing_counts_the_clients_prompt_and_new_tokens_only(server, tokenizer):
    base, _ = server
    for prompt in ("import os\n", "class Stack:", "x = 1 +", "def "):
        body = post(base, prompt=prompt, max_tokens=2, temperature=0, ignore_eos=True).json()
        assert body["usage"]["prompt_tokens"] == len(tokenizer(prompt)["input_ids"]), prompt
        assert body["usage"]["completion_tokens"] == 2, prompt


def test_function_role_is_accepted(server):
    base, _ = server
    r = post(base, "/v1/chat/completions", messages=[{"role": "function", "content": "42", "name": "f"}],
             max_tokens=2)
    assert r.status_code == 200
