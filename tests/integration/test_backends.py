import pytest
import torch

from genfast.backends.registry import backend_names, get_backend
from genfast.errors import BackendUnavailableError, ConfigError
from genfast.models.loading import from_model
from genfast.models.tiny import tiny_model
from genfast.runtime.generate import generate
from genfast.runtime.hf import HFRuntime
from genfast.runtime.torch_runtime import TorchRuntime


def _ids(batch=2, length=12):
    return torch.randint(1, 400, (batch, length), generator=torch.Generator().manual_seed(0))


def test_unknown_backend_lists_valid_names():
    with pytest.raises(ConfigError, match="Unknown backend 'vulkan'") as info:
        get_backend("vulkan")
    for name in backend_names():
        assert name in info.value.hint


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_tensorrt_without_nvidia_gpu_is_a_clear_error():
    with pytest.raises(BackendUnavailableError, match="needs an NVIDIA GPU"):
        get_backend("tensorrt")


def test_torch_runtime_equals_transformers(tokenizer, arch):
    model, _ = tiny_model(arch, tokenizer)
    ids = _ids()
    ours, ref = TorchRuntime(model), HFRuntime(model)
    assert torch.equal(generate(ours, ids, 24), generate(ref, ids, 24))
    torch.testing.assert_close(ours.logits(ids), ref.logits(ids), rtol=1e-4, atol=1e-4)


def test_rows_at_different_positions_share_a_batch(tokenizer):
    """Per-row positions: a batch whose rows have different lengths equals each row run alone."""
    model, _ = tiny_model("llama", tokenizer)
    rt = TorchRuntime(model)
    short, long = _ids(1, 5), _ids(1, 9)
    _, cache_a = rt.prefill(short)
    _, cache_b = rt.prefill(long)
    # splice both rows into one batched cache
    both = rt.decoder.new_cache(2, rt.max_cache_len)
    for layer in range(len(both.k)):
        both.k[layer][0], both.v[layer][0] = cache_a.k[layer][0], cache_a.v[layer][0]
        both.k[layer][1], both.v[layer][1] = cache_b.k[layer][0], cache_b.v[layer][0]
    both.lengths = [5, 9]
    tokens = torch.tensor([7, 11])
    batched, _ = rt.decode(tokens, both)
    alone_a, _ = rt.decode(tokens[:1], cache_a)
    alone_b, _ = rt.decode(tokens[1:], cache_b)
    torch.testing.assert_close(batched, torch.cat([alone_a, alone_b]), rtol=1e-5, atol=1e-5)


def test_cache_overflow_is_a_clear_error(tokenizer):
    model, _ = tiny_model("gpt2", tokenizer)
    rt = TorchRuntime(model, max_cache_len=14)
    with pytest.raises(ConfigError, match="KV cache is full"):
        generate(rt, _ids(1, 12), 8)


def test_backend_falls_back_to_transformers_for_other_families(tokenizer):
    from transformers import BloomConfig, BloomForCausalLM

    model = BloomForCausalLM(BloomConfig(vocab_size=len(tokenizer), hidden_size=32, n_layer=1, n_head=2)).eval()
    with pytest.warns(UserWarning, match="does not cover 'bloom'"):
        runtime = get_backend("torch").build(from_model(model, tokenizer))
    assert runtime.name == "hf"


@pytest.mark.slow
@pytest.mark.parametrize("arch_name", ["gpt2", "llama"])
def test_torch_compile_equals_transformers(tokenizer, arch_name):
    model, _ = tiny_model(arch_name, tokenizer)
    handle = from_model(model, tokenizer)
    runtime = get_backend("torch-compile").build(handle, batch=2, max_cache_len=40)
    assert runtime.compile_time_s > 0
    ids = _ids()
    assert torch.equal(generate(runtime, ids, 24), generate(HFRuntime(model), ids, 24))


@pytest.mark.slow
def test_compiled_runtimes_of_different_models_keep_their_own_graphs(tokenizer, recwarn):
    """Module guards are skipped for speed, so one runtime must never run another's graph."""
    from genfast.compress import compress_
    from genfast.compress.quantize import Int8WeightOnly

    handles = [from_model(tiny_model("gpt2", tokenizer)[0], tokenizer) for _ in range(2)]
    compress_(handles[1], Int8WeightOnly())  # other layer types, same decoder class
    ids = _ids()
    for handle in handles:
        compiled = get_backend("torch-compile").build(handle, batch=2, max_cache_len=40)
        assert torch.equal(generate(compiled, ids, 12), generate(TorchRuntime(handle.model), ids, 12))
    assert not [w for w in recwarn if "torch.compile failed" in str(w.message)]


def test_autocast_is_refused_where_the_cpu_would_emulate_it(tokenizer, monkeypatch):
    from genfast.profiling import hardware

    model, _ = tiny_model("llama", tokenizer)
    monkeypatch.setattr(hardware, "cpu_flags", lambda: {"avx2"})
    with pytest.raises(ConfigError, match="not native on this CPU"):
        get_backend("torch").build(from_model(model, tokenizer), autocast="bf16")


def test_bf16_autocast_where_native(tokenizer, monkeypatch):
    from genfast.profiling import hardware

    model, _ = tiny_model("llama", tokenizer)
    monkeypatch.setattr(hardware, "cpu_flags", lambda: {"avx512_bf16"})
    runtime = get_backend("torch").build(from_model(model, tokenizer), autocast="bf16")
    assert runtime.logits(_ids()).dtype == torch.bfloat16
    agree = (generate(runtime, _ids(), 16) == generate(HFRuntime(model), _ids(), 16)).float().mean()
    assert agree > 0.8
