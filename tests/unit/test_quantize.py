import copy

import pytest
import torch
import torch.nn.functional as F

import genfast

from genfast.backends.registry import build_runtime
from genfast.compress import compress_, recipe_of
from genfast.compress.quantize import CastPrecision, DynamicInt8, Int4WeightOnly, Int8WeightOnly, sqnr_db
from genfast.compress.quantize.dynamic_int8 import DynamicInt8Linear
from genfast.compress.quantize.int4_weight import Int4WeightOnlyLinear
from genfast.compress.quantize.int8_weight import Int8WeightOnlyLinear
from genfast.errors import ConfigError
from genfast.models.loading import from_model, load
from genfast.models.tiny import tiny_model
from genfast.profiling import memory
from genfast.runtime.generate import generate
from genfast.runtime.torch_runtime import TorchRuntime

# Quality floors for one layer on Gaussian weights and activations (dB of output SQNR).
# int8 per channel: ~40 dB; dynamic int8 (7-bit activations per tensor): ~30 dB; int4 in groups of 32: ~19 dB.
LAYER_FLOORS = [(Int8WeightOnlyLinear.from_dense, 36.0), (DynamicInt8Linear.from_dense, 26.0),
                (lambda m: Int4WeightOnlyLinear.from_dense(m, 32), 16.0)]


def _layer(out_features=96, in_features=256, bias=True):
    torch.manual_seed(0)
    return torch.nn.Linear(in_features, out_features, bias=bias).eval()


@pytest.mark.parametrize("build,floor", LAYER_FLOORS)
@pytest.mark.parametrize("shape", [(96, 256), (100, 40)], ids=["kernel", "odd-shape"])
def test_quantized_layer_output_stays_above_its_sqnr_floor(build, floor, shape):
    if build is LAYER_FLOORS[2][0] and shape[1] % 32:
        pytest.skip("int4 needs the group size to divide the input width")
    dense = _layer(*shape)
    x = torch.randn(5, 3, shape[1])
    with torch.no_grad():
        quantized = build(dense)
        y = quantized(x)
        assert y.shape == (5, 3, shape[0]) and y.dtype == torch.float32
        assert floor < sqnr_db(dense(x), y) < 80  # close, but really quantized


@pytest.mark.parametrize("cls", [Int8WeightOnlyLinear, Int4WeightOnlyLinear])
def test_weight_only_kernel_computes_what_the_stored_weights_say(cls):
    """The packed CPU kernel against a plain matmul with the dequantized weight (bf16 activations)."""
    dense = _layer(100, 256)  # 100 rows: the int4 kernel's zero-row padding is exercised
    quantized = cls.from_dense(dense) if cls is Int8WeightOnlyLinear else cls.from_dense(dense, 64)
    x = torch.randn(4, 256)
    with torch.no_grad():
        reference = F.linear(x.bfloat16().float(), quantized.dequantized(), quantized.bias)
        assert sqnr_db(reference, quantized(x)) > 40


def test_int4_smaller_groups_are_more_accurate():
    dense = _layer(96, 256)
    with torch.no_grad():  # Gaussian weights with outlier columns, as trained matrices have
        dense.weight.copy_(torch.randn(96, 256) * torch.where(torch.arange(256) % 37 == 0, 8.0, 1.0))
    x = torch.randn(8, 256)
    with torch.no_grad():
        errors = [sqnr_db(dense(x), Int4WeightOnlyLinear.from_dense(dense, g)(x)) for g in (32, 128)]
    assert errors[0] > errors[1] + 1


def test_gpt2_conv1d_is_quantized_in_its_own_orientation(tokenizer):
    model, _ = tiny_model("gpt2", tokenizer)
    conv = model.transformer.h[0].mlp.c_fc  # weight stored (in, out)
    x = torch.randn(2, conv.weight.shape[0])
    with torch.no_grad():
        assert sqnr_db(conv(x), Int8WeightOnlyLinear.from_dense(conv)(x)) > 36


CONFIGS = [(Int8WeightOnly(), 30.0), (DynamicInt8(), 22.0), (Int4WeightOnly(group_size=32), 12.0),
           (CastPrecision("bf16"), 30.0)]


@pytest.mark.parametrize("config,floor", CONFIGS, ids=lambda c: type(c).__name__ if not isinstance(c, float) else "")
def test_quantized_models_stay_close_save_reload_and_run_on_genfasts_decoder(arch, tokenizer, tmp_path, config, floor):
    model, _ = tiny_model(arch, tokenizer)
    original = copy.deepcopy(model)
    handle = from_model(model, tokenizer)
    compress_(handle, config)
    ids = torch.randint(1, 400, (2, 12))
    with torch.no_grad():
        logits = handle.model(ids).logits.float()
        assert sqnr_db(original(ids).logits, logits) > floor
    assert recipe_of(handle.model)[-1]["technique"] == type(config).__name__

    genfast.save(handle, tmp_path)
    reloaded = load(str(tmp_path))
    assert type(reloaded.model.lm_head) is type(handle.model.lm_head)
    assert reloaded.dtype == handle.dtype
    assert recipe_of(reloaded.model) == handle.recipe["steps"]
    with torch.no_grad():
        torch.testing.assert_close(reloaded.model(ids).logits, handle.model(ids).logits, rtol=0, atol=0)

    prompt = ids[:1, :8]
    expected = reloaded.model.generate(prompt, max_new_tokens=6, min_new_tokens=6, do_sample=False,
                                       pad_token_id=0)[:, 8:]
    assert torch.equal(generate(TorchRuntime(reloaded.model), prompt, 6), expected)  # fused layers agree


def test_quantized_model_reports_its_logical_parameters_and_smaller_size(tokenizer):
    model, _ = tiny_model("llama", tokenizer)
    params, size = memory.parameter_count(model), memory.weight_bytes(model)
    read = memory.weight_bytes_read_per_step(model)
    compress_(model, Int8WeightOnly())
    assert memory.parameter_count(model) == params
    assert memory.weight_bytes(model) < 0.6 * size  # embedding stays fp32; every matrix is int8
    assert memory.weight_bytes_read_per_step(model) < 0.3 * read


def test_int4_group_size_that_does_not_divide_a_layer_is_a_clear_error_and_changes_nothing(tokenizer):
    model, _ = tiny_model("llama", tokenizer)  # width 64
    with pytest.raises(ConfigError, match=r"group size 128 does not divide the 64 input channels.*Use a group "
                                          r"size that divides it: 32, 64"):
        compress_(model, Int4WeightOnly(group_size=128))
    assert all(not isinstance(m, Int4WeightOnlyLinear) for m in model.modules())
    assert recipe_of(model) == []


@pytest.mark.parametrize("config,match", [(Int4WeightOnly(group_size=48), "32, 64, 128, 256"),
                                          (CastPrecision("int3"), "fp16, bf16")])
def test_bad_quantization_settings_name_the_valid_values(tokenizer, config, match):
    model, _ = tiny_model("llama", tokenizer)
    with pytest.raises(ConfigError, match=match):
        compress_(model, config)


def test_a_module_without_linear_layers_is_refused():
    with pytest.raises(ConfigError, match="no nn.Linear or Conv1D"):
        compress_(torch.nn.Sequential(torch.nn.ReLU()), Int8WeightOnly())


def test_any_module_can_be_quantized():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.GELU(), torch.nn.Linear(128, 32)).eval()
    reference = copy.deepcopy(net)
    compress_(net, Int8WeightOnly())
    x = torch.randn(4, 64)
    with torch.no_grad():
        assert sqnr_db(reference(x), net(x)) > 30


def test_backends_that_cannot_run_genfast_quantized_layers_say_so(tokenizer):
    pytest.importorskip("onnxruntime")
    model, _ = tiny_model("llama", tokenizer)
    handle = from_model(model, tokenizer)
    compress_(handle, Int8WeightOnly())
    with pytest.raises(ConfigError, match="cannot run.*--backend onnxruntime --precision int8"):
        build_runtime("onnxruntime", handle)
    cast = from_model(tiny_model("llama", tokenizer)[0], tokenizer)
    compress_(cast, CastPrecision("bf16"))
    with pytest.raises(ConfigError, match="takes fp32 weights, not bf16"):
        build_runtime("onnxruntime", cast)
