"""Families beyond the tiny fixtures' three: genfast's decoder equals transformers' own forward."""

import pytest
import torch

from genfast.models.families import UnsupportedModelError, family_of
from genfast.runtime.generate import generate
from genfast.runtime.torch_runtime import TorchRuntime

NEOX = dict(vocab_size=300, hidden_size=64, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
            max_position_embeddings=256, rotary_pct=0.25, bos_token_id=0, eos_token_id=None, pad_token_id=0,
            tie_word_embeddings=False)
COMMON = dict(vocab_size=300, hidden_size=64, intermediate_size=192, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, max_position_embeddings=256, bos_token_id=0, eos_token_id=None,
              pad_token_id=0)


def _model(kind: str):
    from transformers import (
        AutoModelForCausalLM,
        GemmaConfig,
        GPTNeoXConfig,
        LlamaConfig,
        MistralConfig,
        OPTConfig,
        Phi3Config,
        Qwen2Config,
        Qwen3Config,
    )

    torch.manual_seed(0)
    config = {"qwen3": lambda: Qwen3Config(**COMMON, head_dim=32),
              "llama-gelu": lambda: LlamaConfig(**COMMON, hidden_act="gelu_pytorch_tanh"),
              "llama-relu": lambda: LlamaConfig(**COMMON, hidden_act="relu"),
              "mistral-window": lambda: MistralConfig(**COMMON, sliding_window=8),
              "qwen2-window-layer": lambda: Qwen2Config(**COMMON, use_sliding_window=True, sliding_window=8,
                                                        max_window_layers=1),
              "phi3": lambda: Phi3Config(**COMMON),
              "phi3-partial-rotary": lambda: Phi3Config(**COMMON, partial_rotary_factor=0.5),
              "gpt-neox": lambda: GPTNeoXConfig(**NEOX),
              "gpt-neox-sequential": lambda: GPTNeoXConfig(**NEOX, use_parallel_residual=False),
              "gemma": lambda: GemmaConfig(**COMMON, head_dim=16),
              "opt": lambda: OPTConfig(vocab_size=300, hidden_size=64, ffn_dim=256, num_hidden_layers=2,
                                       num_attention_heads=4, max_position_embeddings=256, word_embed_proj_dim=64,
                                       bos_token_id=0, eos_token_id=None, pad_token_id=0)}[kind]()
    return AutoModelForCausalLM.from_config(config).eval()


KINDS = ["qwen3", "llama-gelu", "llama-relu", "mistral-window", "qwen2-window-layer", "phi3", "phi3-partial-rotary",
         "gpt-neox", "gpt-neox-sequential", "gemma", "opt"]


@pytest.mark.parametrize("kind", KINDS)
def test_greedy_tokens_equal_transformers(kind):
    model = _model(kind)
    ids = torch.tensor([[1, 5, 9, 3, 7]])
    expected = model.generate(ids, max_new_tokens=32, do_sample=False)[0, 5:].tolist()
    assert generate(TorchRuntime(model), ids, 32)[0].tolist() == expected


@pytest.mark.parametrize("backend", ["torch-compile", "onnxruntime", "openvino"])
@pytest.mark.parametrize("kind", ["qwen3", "mistral-window", "qwen2-window-layer", "phi3-partial-rotary", "gpt-neox",
                                  "gemma", "opt"])
def test_every_backend_runs_the_new_families_exactly(tokenizer, kind, backend):
    """Two rows of different content, 32 greedy tokens past the 8-token window."""
    from genfast.backends.registry import build_runtime
    from genfast.models.loading import from_model

    if backend in ("onnxruntime", "openvino"):
        pytest.importorskip(backend)
    model = _model(kind)
    ids = torch.randint(1, 300, (2, 12), generator=torch.Generator().manual_seed(0))
    expected = model.generate(ids, max_new_tokens=32, do_sample=False)[:, 12:]
    assert torch.equal(generate(build_runtime(backend, from_model(model, tokenizer), threads=1), ids, 32), expected)


def test_an_activation_the_decoder_lacks_is_refused_by_name():
    from transformers import AutoModelForCausalLM, LlamaConfig

    model = AutoModelForCausalLM.from_config(LlamaConfig(**COMMON, hidden_act="prelu"))
    with pytest.raises(UnsupportedModelError, match="activation 'prelu'"):
        TorchRuntime(model)


def test_unknown_families_name_the_covered_ones():
    from transformers import FalconConfig

    with pytest.raises(UnsupportedModelError, match="qwen3, .*gpt_neox"):
        family_of(FalconConfig())


def test_the_hf_runtime_uses_the_current_cache_argument(tokenizer):
    import warnings

    from genfast.models.tiny import tiny_model
    from genfast.runtime.hf import HFRuntime

    model, _ = tiny_model("llama", tokenizer)
    ids = torch.tensor([[1, 5, 9]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # transformers deprecates `past_key_values` (removed in 5.40)
        out = generate(HFRuntime(model), ids, 6)
    assert out.tolist() == model.generate(ids, max_new_tokens=6, do_sample=False)[:, 3:].tolist()


@pytest.mark.parametrize("quantize", ["int8", "int4", "dynamic"])
def test_quantized_artifacts_of_renamed_checkpoints_reload(tokenizer, tmp_path, quantize):
    """GPT-NeoX's head is `lm_head` in memory and `embed_out` on disk: the artifact keeps the model's names."""
    from transformers import AutoModelForCausalLM, GPTNeoXConfig

    from genfast.compress import compress_
    from genfast.compress.quantize import DynamicInt8, Int4WeightOnly, Int8WeightOnly
    from genfast.models.loading import from_model, load
    from genfast.models.saving import save

    torch.manual_seed(0)
    config = GPTNeoXConfig(vocab_size=len(tokenizer), hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                           intermediate_size=128, max_position_embeddings=256, tie_word_embeddings=False)
    handle = from_model(AutoModelForCausalLM.from_config(config), tokenizer)
    compress_(handle, {"int8": Int8WeightOnly(), "int4": Int4WeightOnly(group_size=32),
                       "dynamic": DynamicInt8()}[quantize])
    save(handle, tmp_path)
    ids = torch.tensor([[1, 5, 9, 3]])
    torch.testing.assert_close(load(str(tmp_path)).model(ids).logits, handle.model(ids).logits)


@pytest.mark.parametrize("kind", ["phi3", "qwen3", "mistral-window", "phi3-partial-rotary", "llama-gelu"])
def test_int8_weights_on_genfasts_decoder_equal_transformers_on_the_same_weights(kind):
    """The layer-stack operator where it applies (Phi-3), PyTorch's steps where it does not."""
    from genfast.compress import compress_
    from genfast.compress.quantize import Int8WeightOnly
    from genfast.runtime.hf import HFRuntime

    model = _model(kind)
    compress_(model, Int8WeightOnly())
    runtime = TorchRuntime(model)
    from genfast.kernels.ops import available

    assert (runtime.decoder.native_plans is not None) == (kind == "phi3" and available())
    ids = torch.randint(1, 300, (2, 12), generator=torch.Generator().manual_seed(0))
    assert torch.equal(generate(runtime, ids, 32), generate(HFRuntime(model), ids, 32))


@pytest.mark.parametrize("kind", ["gpt-neox", "phi3", "mistral-window", "gemma", "opt"])
def test_structured_pruning_shrinks_and_reloads_with_transformers(tokenizer, tmp_path, kind):
    from transformers import AutoModelForCausalLM

    from genfast.compress import compress_
    from genfast.compress.prune import PruneFFN, PruneLayers

    model = _model(kind)
    before = sum(p.numel() for p in model.parameters())
    compress_(model, PruneFFN(fraction=0.25))
    compress_(model, PruneLayers(count=1))
    assert sum(p.numel() for p in model.parameters()) < 0.75 * before
    model.save_pretrained(tmp_path)
    ids = torch.tensor([[1, 5, 9, 3, 7]])
    torch.testing.assert_close(AutoModelForCausalLM.from_pretrained(tmp_path)(ids).logits, model(ids).logits)
    assert torch.equal(generate(TorchRuntime(model), ids, 8),
                       model.generate(ids, max_new_tokens=8, do_sample=False)[:, 5:])
