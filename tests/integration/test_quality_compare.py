import copy

import pytest
import torch

from genfast.errors import DataError
from genfast.models.tiny import tiny_model
from genfast.quality.budget import QualityBudget
from genfast.quality.compare import QualitySettings, compare
from genfast.runtime.hf import HFRuntime

FAST = QualitySettings(window=32, max_windows=12, batch_size=4, prompts=4, prompt_len=16, new_tokens=8,
                       resamples=200)


def _damaged(model, scale=0.5):
    noisy = copy.deepcopy(model)
    torch.manual_seed(1)
    with torch.no_grad():
        for p in noisy.parameters():
            p.add_(torch.randn_like(p) * scale * p.std())
    return noisy


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_reference_against_itself_is_perfect(arch, tokenizer):
    model, _ = tiny_model(arch, tokenizer)
    result = compare(model, model, tokenizer, settings=FAST, budget=QualityBudget.parse("0%", "1.0", "0", "1.0"))
    assert result["kl"]["value"] == pytest.approx(0.0, abs=1e-6)
    assert result["top1_agreement"]["value"] == 1.0
    assert result["greedy"]["agreement"]["value"] == 1.0
    assert result["greedy"]["first_divergence"] == [None] * 4
    assert result["perplexity"]["relative_change"]["value"] == pytest.approx(0.0, abs=1e-9)
    assert not result["perplexity"]["significant"]
    assert result["budget"]["passed"]


def test_damaged_copy_fails_the_budget(tokenizer):
    model, _ = tiny_model("llama", tokenizer)
    result = compare(model, _damaged(model), tokenizer, settings=FAST,
                     budget=QualityBudget.parse("2%", "0.95", "0.001"))
    assert not result["budget"]["passed"]
    assert result["kl"]["value"] > 0.001
    assert result["top1_agreement"]["value"] < 0.95
    assert any("top-1 agreement" in f for f in result["budget"]["failures"])


def test_accepts_runtimes_and_bare_logits_functions(tokenizer):
    model, _ = tiny_model("qwen2", tokenizer)
    result = compare(HFRuntime(model), lambda ids: model(input_ids=ids).logits, tokenizer, settings=FAST)
    assert result["top1_agreement"]["value"] == 1.0
    assert result["greedy"]["agreement"]["value"] == 1.0  # cache-free decoding equals the cached one


def test_text_shorter_than_one_window(tokenizer):
    model, _ = tiny_model("gpt2", tokenizer)
    with pytest.raises(DataError, match="fewer than one window of 32"):
        compare(model, model, tokenizer, text="x = 1", settings=FAST)


def test_vocabulary_mismatch(tokenizer):
    model, _ = tiny_model("gpt2", tokenizer)
    small = lambda ids: model(input_ids=ids).logits[..., :300]  # noqa: E731 - a model scoring fewer tokens
    with pytest.raises(DataError, match="Vocabulary mismatch"):
        compare(model, small, tokenizer, settings=FAST)
