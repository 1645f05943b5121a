import importlib.util

import pytest
import torch

from genfast.backends.registry import build_runtime, get_backend
from genfast.errors import BackendUnavailableError, ConfigError
from genfast.models.loading import from_model
from genfast.models.tiny import tiny_model
from genfast.quality.budget import QualityBudget
from genfast.quality.compare import QualitySettings, compare
from genfast.runtime.generate import generate
from genfast.runtime.hf import HFRuntime

pytest.importorskip("openvino")
pytest.importorskip("nncf")

FAST = QualitySettings(window=32, max_windows=8, prompts=4, prompt_len=16, new_tokens=8, resamples=100)


def _ids():
    return torch.randint(1, 400, (2, 12), generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("arch_name", ["gpt2", "llama"])
def test_fp32_greedy_equals_the_torch_reference(tokenizer, arch_name):
    model, _ = tiny_model(arch_name, tokenizer)
    runtime = get_backend("openvino").build(from_model(model, tokenizer), threads=1)
    assert torch.equal(generate(runtime, _ids(), 32), generate(HFRuntime(model), _ids(), 32))


@pytest.mark.parametrize("precision, budget", [("int8", ("2%", "0.9", "0.01")), ("int4", ("10%", "0.7", "0.05"))])
def test_compressed_weights_stay_inside_a_budget_and_shrink(tokenizer, precision, budget):
    model, _ = tiny_model("llama", tokenizer)
    handle = from_model(model, tokenizer)
    fp32 = get_backend("openvino").build(handle)
    small = get_backend("openvino").build(handle, precision=precision)
    assert small.weight_bytes_per_step < fp32.weight_bytes_per_step
    result = compare(model, small, tokenizer, settings=FAST, budget=QualityBudget.parse(*budget))
    assert result["budget"]["passed"], result["budget"]["failures"]


def test_unknown_precision(tokenizer):
    model, _ = tiny_model("gpt2", tokenizer)
    with pytest.raises(ConfigError, match="precision 'fp8'"):
        build_runtime("openvino", from_model(model, tokenizer), precision="fp8")


def test_missing_extra_names_the_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "nncf" else real(n, *a))
    with pytest.raises(BackendUnavailableError, match=r"pip install 'genfast\[openvino\]'"):
        get_backend("openvino")


def test_roofline_bytes_skip_tables_that_are_only_gathered(tokenizer):
    from genfast.profiling.memory import weight_bytes_read_per_step

    model, _ = tiny_model("llama", tokenizer)  # tied embeddings: the head reads the table, the lookup gathers
    runtime = get_backend("openvino").build(from_model(model, tokenizer))
    assert runtime.weight_bytes_per_step == pytest.approx(weight_bytes_read_per_step(model), rel=0.02)


@pytest.mark.parametrize("arch_name", ["qwen2", "llama"])
def test_fp32_means_fp32_activations(tokenizer, arch_name):
    model, _ = tiny_model(arch_name, tokenizer)  # qwen2's tied head made bf16 activations change tokens
    runtime = get_backend("openvino").build(from_model(model, tokenizer), threads=1)
    ids = _ids()
    torch.testing.assert_close(runtime.logits(ids), HFRuntime(model).logits(ids), atol=1e-4, rtol=1e-4)


def test_bf16_is_its_own_precision(tokenizer):
    import openvino as ov

    model, _ = tiny_model("llama", tokenizer)
    handle = from_model(model, tokenizer)
    if "BF16" not in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        with pytest.raises(BackendUnavailableError, match="does not compute bf16"):
            get_backend("openvino").build(handle, precision="bf16")
        return
    runtime = get_backend("openvino").build(handle, precision="bf16")
    assert runtime.name == "openvino-bf16"
    result = compare(model, runtime, tokenizer, settings=FAST, budget=QualityBudget.parse("5%", "0.8", "0.05"))
    assert result["budget"]["passed"], result["budget"]["failures"]
