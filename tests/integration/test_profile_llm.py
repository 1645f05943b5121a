import json

import pytest
import torch

from genfast.models.loading import from_model
from genfast.profiling.llm import profile_llm
from genfast.profiling.timer import STAGES
from genfast.profiling.workload import Workload
from genfast.runtime.generate import generate
from genfast.runtime.hf import HFRuntime


@pytest.fixture(params=["gpt2", "llama"])
def handle(request, tokenizer):
    from genfast.models.tiny import tiny_model

    return from_model(*tiny_model(request.param, tokenizer), source=f"tiny-{request.param}")


def test_profile_reports_every_figure(handle):
    result = profile_llm(handle, Workload(prompt_lens=[8, 24], output_len=6, batch_sizes=[1, 3], repeats=3))
    json.dumps(result)  # the result is JSON-ready
    assert result["schema"] == "genfast.profile/1"
    assert result["model"]["parameters"] > 0 and result["model"]["weight_bytes"] > 0
    assert result["hardware"]["memory_read_bandwidth_gbs"] > 0
    assert [(c["prompt_len"], c["batch_size"]) for c in result["cases"]] == [(8, 1), (8, 3), (24, 1), (24, 3)]
    for case in result["cases"]:
        assert set(case["stages_s"]) == set(STAGES)
        for key in ("e2e_s", "ttft_s", "tpot_s", "itl_s", "tokens_per_s", "decode_tokens_per_s"):
            s = case[key]
            assert s["min"] <= s["p50"] <= s["p90"] <= s["p99"] <= s["max"]
        assert case["e2e_s"]["n"] == 3
        assert case["itl_s"]["n"] == 3 * 5  # output_len - 1 decode steps per run
        assert case["ttft_s"]["median"] < case["e2e_s"]["median"]
        mem = case["memory"]
        assert 0 < mem["peak_rss_run_bytes"] <= mem["peak_rss_bytes"] and mem["peak_rss_load_bytes"] > 0
        roof = case["roofline"]
        assert 0 < roof["achieved_fraction"] < roof["achieved_fraction_with_kv"]  # KV reads lower the ceiling
        assert roof["ceiling_decode_tokens_per_s"] > roof["ceiling_with_kv_decode_tokens_per_s"] > 0
        cfg = handle.model.config  # keys and values of every layer, fp32, for prompt + output / 2 positions
        if cfg.model_type == "gpt2":
            per_token = cfg.n_layer * 2 * cfg.n_embd * 4
        else:  # grouped KV heads
            per_token = cfg.num_hidden_layers * 2 * cfg.num_key_value_heads * cfg.head_dim * 4
        assert roof["kv_bytes_per_step"] == int(case["batch_size"] * per_token * (case["prompt_len"] + 3))


def test_stage_times_add_up_to_end_to_end(handle):
    result = profile_llm(handle, Workload(prompt_lens=[16], output_len=12, repeats=3))
    case = result["cases"][0]
    # a tiny model's decode step takes tens of microseconds, so the loop between the timed stages is
    # a few percent of it; a stage left untimed would be far more
    assert 0.9 <= case["stage_sum_fraction"] <= 1.0


def test_single_token_output_has_no_decode_figures(handle):
    case = profile_llm(handle, Workload(prompt_lens=[8], output_len=1, repeats=1))["cases"][0]
    assert case["tpot_s"] is None and case["roofline"] is None
    assert case["ttft_s"]["median"] > 0


def test_decode_loop_matches_transformers_generate(handle):
    ids = torch.randint(1, 400, (2, 10), generator=torch.Generator().manual_seed(0))
    ours = generate(HFRuntime(handle.model), ids, 8)
    ref = handle.model.generate(ids, max_new_tokens=8, min_new_tokens=8, do_sample=False,
                                pad_token_id=0)[:, ids.shape[1]:]
    assert torch.equal(ours, ref)
