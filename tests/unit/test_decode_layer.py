"""The one-operator decode layer stack (kernels.decode_layer) against the per-op decoder path."""

import copy
import gc

import pytest
import torch

from genfast.compress import compress_
from genfast.compress.quantize.int4_weight import Int4WeightOnly, Int4WeightOnlyLinear
from genfast.compress.quantize.int8_weight import Int8WeightOnly
from genfast.kernels import decode_layer, ops
from genfast.models.tiny import tiny_model
from genfast.runtime.compiled import CompiledTorchRuntime
from genfast.runtime.sampling import greedy
from genfast.runtime.torch_runtime import TorchRuntime

pytestmark = pytest.mark.skipif(ops._compiler() is None, reason="no C++ compiler on this machine")


def _runtime(arch: str, tokenizer, config=Int8WeightOnly(), **shape) -> TorchRuntime:
    """A tiny model of ``arch`` compressed with ``config`` (None: fp32, as built)."""
    model, _ = tiny_model(arch, tokenizer, **shape)
    if config is not None:
        compress_(model, config)
    return TorchRuntime(model, max_cache_len=32)


def _rows_of_different_lengths(runtime: TorchRuntime, lengths=(5, 9)):
    """A batch cache whose rows hold prompts of ``lengths`` (as the serving engine fills them), and
    each row's next token."""
    cache = runtime.new_cache(len(lengths))
    tokens = []
    for row, n in enumerate(lengths):
        ids = torch.randint(1, 500, (1, n), generator=torch.Generator().manual_seed(row))
        logits, _ = runtime.prefill(ids, cache.view(row, row + 1))
        tokens.append(greedy(logits))
    cache.lengths = list(lengths)
    return cache, torch.cat(tokens)


@pytest.mark.parametrize("hidden", [64, 96], ids=["aligned", "padded"])  # 96 wide: padded GEMV columns
@pytest.mark.parametrize("config", [Int8WeightOnly(), Int4WeightOnly(32), None], ids=["int8", "int4", "fp32"])
def test_one_operator_step_equals_the_per_op_step(arch, tokenizer, hidden, config):
    runtime = _runtime(arch, tokenizer, config, hidden=hidden)
    plans = runtime.decoder.native_plans
    assert plans is not None and len(plans) == 2
    native_cache, token = _rows_of_different_lengths(runtime)
    per_op_cache = copy.deepcopy(native_cache)
    for _ in range(4):
        native, native_cache = runtime.decode(token, native_cache)
        runtime.decoder.native_plans = None
        per_op, per_op_cache = runtime.decode(token, per_op_cache)
        runtime.decoder.native_plans = plans
        # the norms' fp32 results differ in their last bits, which can move an int16 activation by one step
        torch.testing.assert_close(native, per_op, rtol=1e-4, atol=1e-4)
        for a, b in zip(native_cache.k + native_cache.v, per_op_cache.k + per_op_cache.v, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
        token = greedy(native)


def test_compiled_step_calls_the_layer_stack_and_keeps_the_greedy_tokens(tokenizer):
    runtime = _runtime("llama", tokenizer)
    compiled = CompiledTorchRuntime(runtime.decoder, max_cache_len=32)
    plans, ids = runtime.decoder.native_plans, torch.randint(1, 500, (1, 6), generator=torch.Generator().manual_seed(3))

    def greedy_tokens(rt, n=8):
        logits, cache = rt.prefill(ids)
        out = []
        for _ in range(n):
            out.append(int(greedy(logits)))
            logits, cache = rt.decode(greedy(logits), cache)
        return out

    native = greedy_tokens(compiled)
    logits, cache = compiled.prefill(ids)
    with torch.profiler.profile() as prof:
        compiled.decode(greedy(logits), cache)
    assert "genfast::decode_layers" in {event.key for event in prof.key_averages()}
    runtime.decoder.native_plans = None
    assert native == greedy_tokens(runtime)
    runtime.decoder.native_plans = plans


def test_models_it_does_not_cover_keep_the_per_op_path(tokenizer):
    bf16, _ = tiny_model("gpt2", tokenizer)
    assert TorchRuntime(bf16.to(torch.bfloat16)).decoder.native_plans is None
    mixed, _ = tiny_model("llama", tokenizer)  # qkv and up share their input, so they must share a format
    compress_(mixed, Int8WeightOnly())
    mlp = mixed.model.layers[0].mlp
    for name in ("gate_proj", "up_proj"):
        dense = torch.nn.Linear(64, 192)
        setattr(mlp, name, Int4WeightOnlyLinear.from_dense(dense, 32))
    assert TorchRuntime(mixed).decoder.native_plans is None
    runtime = _runtime("gpt2", tokenizer)
    cache = runtime.new_cache(1)
    x = torch.zeros(1, 1, 64)
    assert decode_layer.supports(x, cache)
    assert not decode_layer.supports(torch.zeros(1, 2, 64), cache)  # a prefill
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not decode_layer.supports(x, cache)


def test_a_plan_refuses_weights_that_do_not_fit(tokenizer):
    runtime = _runtime("gpt2", tokenizer)
    tensors, settings = decode_layer.layer_weights(runtime.decoder.blocks[0])
    with pytest.raises(RuntimeError, match="genfast::layer_plan: projection 1's fp32 weight must be \\(out, in\\)"):
        torch.ops.genfast.layer_plan(tensors[:5] + [tensors[0]] + tensors[6:], **settings)
    with pytest.raises(RuntimeError, match="projection 1's int8 or int4 weights have no scale"):
        torch.ops.genfast.layer_plan(tensors[:6] + [None] + tensors[7:], **settings)
    fp32 = decode_layer.layer_weights(_runtime("gpt2", tokenizer, None).decoder.blocks[0])[0]
    with pytest.raises(RuntimeError, match="fp32 projections must have the layer's exact widths"):
        torch.ops.genfast.layer_plan(fp32[:5] + [torch.zeros(64, 128)] + fp32[6:], **settings)
    with pytest.raises(RuntimeError, match="projection shapes do not fit"):
        torch.ops.genfast.layer_plan(tensors, **{**settings, "heads": 8, "kv_heads": 8})


def test_a_step_refuses_positions_past_the_cache(tokenizer):
    runtime = _runtime("gpt2", tokenizer)
    cache = runtime.new_cache(1, max_len=4)
    with pytest.raises(RuntimeError, match="position 4 outside 0..3"):
        decode_layer.decode_layers(torch.zeros(1, 1, 64), torch.tensor([[4]]), None, cache,
                                   runtime.decoder.native_plans)


def test_plans_are_released_with_their_decoder(tokenizer):
    runtime = _runtime("gpt2", tokenizer)
    plans, cache = runtime.decoder.native_plans, runtime.new_cache(1)
    del runtime
    gc.collect()
    with pytest.raises(RuntimeError, match="no layer plan"):
        decode_layer.decode_layers(torch.zeros(1, 1, 64), torch.tensor([[0]]), None, cache, plans)
