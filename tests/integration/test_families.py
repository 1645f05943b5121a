"""Families beyond the tiny fixtures' three: genfast's decoder equals transformers' own forward."""

import pytest
import torch

from genfast.models.families import UnsupportedModelError, family_of
from genfast.runtime.generate import generate
from genfast.runtime.torch_runtime import TorchRuntime

COMMON = dict(vocab_size=300, hidden_size=64, intermediate_size=192, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, max_position_embeddings=256, bos_token_id=0, eos_token_id=None,
              pad_token_id=0)


def _model(kind: str):
    from transformers import AutoModelForCausalLM, LlamaConfig, Qwen3Config

    torch.manual_seed(0)
    config = {"qwen3": lambda: Qwen3Config(**COMMON, head_dim=32),
              "llama-gelu": lambda: LlamaConfig(**COMMON, hidden_act="gelu_pytorch_tanh"),
              "llama-relu": lambda: LlamaConfig(**COMMON, hidden_act="relu")}[kind]()
    return AutoModelForCausalLM.from_config(config).eval()


@pytest.mark.parametrize("kind", ["qwen3", "llama-gelu", "llama-relu"])
def test_greedy_tokens_equal_transformers(kind):
    model = _model(kind)
    ids = torch.tensor([[1, 5, 9, 3, 7]])
    expected = model.generate(ids, max_new_tokens=32, do_sample=False)[0, 5:].tolist()
    assert generate(TorchRuntime(model), ids, 32)[0].tolist() == expected


def test_an_activation_the_decoder_lacks_is_refused_by_name():
    from transformers import AutoModelForCausalLM, LlamaConfig

    model = AutoModelForCausalLM.from_config(LlamaConfig(**COMMON, hidden_act="prelu"))
    with pytest.raises(UnsupportedModelError, match="activation 'prelu'"):
        TorchRuntime(model)


def test_unknown_families_name_the_covered_ones():
    from transformers import GPTNeoXConfig

    with pytest.raises(UnsupportedModelError, match="qwen3"):
        family_of(GPTNeoXConfig())
