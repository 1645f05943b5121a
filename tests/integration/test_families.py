"""Families beyond the tiny fixtures' three: genfast's decoder equals transformers' own forward."""

import pytest
import torch

from genfast.models.families import UnsupportedModelError, family_of
from genfast.runtime.generate import generate
from genfast.runtime.torch_runtime import TorchRuntime

NEOX = dict(vocab_size=300, hidden_size=64, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
            max_position_embeddings=256, rotary_pct=0.25, bos_token_id=0, eos_token_id=None, pad_token_id=0,
            tie_word_embeddings=False)
FALCON = dict(vocab_size=300, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=256,
              bos_token_id=0, eos_token_id=None, pad_token_id=0)
COMMON = dict(vocab_size=300, hidden_size=64, intermediate_size=192, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, max_position_embeddings=256, bos_token_id=0, eos_token_id=None,
              pad_token_id=0)


def _model(kind: str):
    from transformers import (
        AutoModelForCausalLM,
        FalconConfig,
        Gemma2Config,
        Gemma3TextConfig,
        GemmaConfig,
        GPTJConfig,
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
              # soft-capped attention and logits, post-norms, alternating 8-token windows, query scale 1/sqrt(32)
              "gemma2": lambda: Gemma2Config(**COMMON, head_dim=16, sliding_window=8, query_pre_attn_scalar=32,
                                             attn_logit_softcapping=5.0, final_logit_softcapping=3.0),
              # q/k norms, a local rotary base for its window layers
              "gemma3": lambda: Gemma3TextConfig(**{**COMMON, "num_hidden_layers": 3}, head_dim=16, sliding_window=8,
                                                 sliding_window_pattern=2, query_pre_attn_scalar=16),
              "falcon": lambda: FalconConfig(**FALCON),  # Falcon-7B's layout: multi-query, parallel attention
              "falcon-grouped": lambda: FalconConfig(**FALCON, new_decoder_architecture=True, num_kv_heads=2),
              "falcon-sequential": lambda: FalconConfig(**FALCON, multi_query=False, parallel_attn=False, bias=True),
              "gptj": lambda: GPTJConfig(vocab_size=300, n_embd=64, n_layer=2, n_head=4, rotary_dim=8, n_positions=256,
                                         bos_token_id=0, eos_token_id=None, pad_token_id=0,
                                         tie_word_embeddings=False),
              "opt": lambda: OPTConfig(vocab_size=300, hidden_size=64, ffn_dim=256, num_hidden_layers=2,
                                       num_attention_heads=4, max_position_embeddings=256, word_embed_proj_dim=64,
                                       bos_token_id=0, eos_token_id=None, pad_token_id=0)}[kind]()
    return AutoModelForCausalLM.from_config(config).eval()


KINDS = ["qwen3", "llama-gelu", "llama-relu", "mistral-window", "qwen2-window-layer", "phi3", "phi3-partial-rotary",
         "gpt-neox", "gpt-neox-sequential", "gemma", "gemma2", "gemma3", "falcon", "falcon-grouped",
         "falcon-sequential", "gptj", "opt"]


@pytest.mark.parametrize("kind", KINDS)
def test_greedy_tokens_equal_transformers(kind):
    model = _model(kind)
    ids = torch.tensor([[1, 5, 9, 3, 7]])
    expected = model.generate(ids, max_new_tokens=32, do_sample=False)[0, 5:].tolist()
    assert generate(TorchRuntime(model), ids, 32)[0].tolist() == expected


@pytest.mark.parametrize("backend", ["torch-compile", "onnxruntime", "openvino"])
@pytest.mark.parametrize("kind", ["qwen3", "mistral-window", "qwen2-window-layer", "phi3-partial-rotary", "gpt-neox",
                                  "gemma", "gemma2", "gemma3", "falcon", "falcon-grouped", "gptj", "opt"])
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
    from transformers import BloomConfig

    with pytest.raises(UnsupportedModelError, match="does not cover 'bloom'.*qwen3, .*gpt_neox, falcon, gptj"):
        family_of(BloomConfig())


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


@pytest.mark.parametrize("kind", KINDS)
def test_int8_weights_stay_inside_a_quality_budget_on_genfasts_decoder(kind):
    """Same tokens as transformers on the same int8 weights (so no error of genfast's own); against
    the fp32 model, logits within 25 dB SQNR and top-1 agreement of 90 %. The layer-stack operator
    runs where it covers the family (Phi-3 here), PyTorch's steps elsewhere."""
    from genfast.compress import compress_
    from genfast.compress.quantize import Int8WeightOnly
    from genfast.compress.quantize.layers import sqnr_db
    from genfast.kernels.ops import available
    from genfast.runtime.hf import HFRuntime

    model = _model(kind)
    ids = torch.randint(1, 300, (2, 24), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        reference = model(ids).logits
    compress_(model, Int8WeightOnly())
    runtime = TorchRuntime(model)
    assert (runtime.decoder.native_plans is not None) == (kind == "phi3" and available())
    assert torch.equal(generate(runtime, ids[:, :12], 32), generate(HFRuntime(model), ids[:, :12], 32))
    logits = runtime.logits(ids)
    assert sqnr_db(reference, logits) > 25
    assert (logits.argmax(-1) == reference.argmax(-1)).float().mean() >= 0.9


def _greedy_rows_of_different_lengths(runtime, prompts: list[torch.Tensor], steps: int) -> list[list[int]]:
    """Each prompt prefilled alone into its row of one cache, then every step decoded as one batch."""
    cache = runtime.new_cache(len(prompts))
    first = [runtime.prefill(p[None], cache.view(i, i + 1))[0] for i, p in enumerate(prompts)]
    cache.lengths = [len(p) for p in prompts]
    token = torch.cat(first).argmax(-1)
    out = [token]
    for _ in range(steps - 1):
        logits, cache = runtime.decode(token, cache)
        token = logits.argmax(-1)
        out.append(token)
    return torch.stack(out, 1).tolist()


@pytest.mark.parametrize("backend", ["torch", "torch-compile"])
@pytest.mark.parametrize("kind", KINDS)
def test_rows_of_different_lengths_decode_as_one_batch(tokenizer, kind, backend):
    """A 5- and a 13-token prompt in one batch: each row's 32 greedy tokens equal transformers' for
    that prompt alone (past the 8-token windows, with per-row positions in every family's variant)."""
    from genfast.backends.registry import build_runtime
    from genfast.models.loading import from_model

    model = _model(kind)
    prompts = [torch.randint(1, 300, (n,), generator=torch.Generator().manual_seed(n)) for n in (5, 13)]
    expected = [model.generate(p[None], max_new_tokens=32, do_sample=False)[0, len(p):].tolist() for p in prompts]
    runtime = build_runtime(backend, from_model(model, tokenizer), threads=1)
    assert runtime.name != "hf"
    assert _greedy_rows_of_different_lengths(runtime, prompts, 32) == expected


@pytest.mark.parametrize("kind", KINDS)
def test_structured_pruning_shrinks_and_reloads_with_transformers(tokenizer, tmp_path, kind):
    """FFN channels and layers on every family; whole heads where transformers reads head_dim from
    the config (elsewhere a one-line refusal). The result reloads with plain transformers and
    genfast's decoder still equals it."""
    from transformers import AutoModelForCausalLM

    from genfast.compress import compress_
    from genfast.compress.prune import PruneFFN, PruneHeads, PruneLayers
    from genfast.errors import ConfigError

    model = _model(kind)
    before = sum(p.numel() for p in model.parameters())
    compress_(model, PruneFFN(fraction=0.25))
    compress_(model, PruneLayers(count=1))
    if family_of(model.config).head_pruning:
        heads = model.config.num_attention_heads
        compress_(model, PruneHeads(fraction=0.5))
        assert model.config.num_attention_heads == heads // 2
    else:
        with pytest.raises(ConfigError, match="transformers derives their head width"):
            compress_(model, PruneHeads(fraction=0.5))
    assert sum(p.numel() for p in model.parameters()) < 0.8 * before
    model.save_pretrained(tmp_path)
    ids = torch.tensor([[1, 5, 9, 3, 7]])
    torch.testing.assert_close(AutoModelForCausalLM.from_pretrained(tmp_path)(ids).logits, model(ids).logits)
    assert torch.equal(generate(TorchRuntime(model), ids, 8),
                       model.generate(ids, max_new_tokens=8, do_sample=False)[:, 5:])
