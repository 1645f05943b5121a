"""genfast's own kernels: the int8 GEMV and decode attention against PyTorch references,
their use inside layers and compiled graphs, and the build's fallbacks."""

import pytest
import torch
import torch.nn.functional as F

from genfast.compress.quantize import sqnr_db
from genfast.compress.quantize.int8_weight import Int8WeightOnlyLinear, quantize_per_channel
from genfast.kernels import decode_attention, fp32_gemv, int4_gemv, int8_gemv, ops
from genfast.kernels.fp32_gemv import GemvLinear

needs_compiler = pytest.mark.skipif(ops._compiler() is None, reason="no C++ compiler on this machine")


def _int16_rows(x: torch.Tensor) -> torch.Tensor:
    """``x`` as the kernel sees it: each row rounded to int16 steps of max|row| / 32767."""
    step = x.abs().amax(-1, keepdim=True).clamp_min(1e-30) / 32767
    return torch.round(x / step) * step


def _uint8_rows(x: torch.Tensor) -> torch.Tensor:
    """``x`` as the prompt product sees it: each row rounded to 8-bit steps of max|row| / 127."""
    step = x.abs().amax(-1, keepdim=True).clamp_min(1e-30) / 127
    return torch.round(x / step) * step


def _int8_layer(out_features: int, in_features: int, bias: bool) -> Int8WeightOnlyLinear:
    torch.manual_seed(0)
    return Int8WeightOnlyLinear.from_dense(torch.nn.Linear(in_features, out_features, bias=bias))


@needs_compiler
@pytest.mark.parametrize("out_features,in_features", [(96, 256), (101, 70), (3, 16),
                                                      (20, 2500), (8, 4096)])  # the last two: several column tiles
@pytest.mark.parametrize("rows", [1, 3, 4, 6])  # passes of up to 4 rows, and their remainders
@pytest.mark.parametrize("bias", [True, False])
def test_int8_gemv_equals_a_matmul_with_the_dequantized_weights(out_features, in_features, rows, bias):
    layer = _int8_layer(out_features, in_features, bias)
    x = torch.randn(rows, in_features)
    y = int8_gemv.int8_gemv(x, layer.gemv_weight, layer.gemv_scale, layer.gemv_bias, out_features)
    assert y.shape == (rows, out_features)
    # integer products and sums: exact up to the fp32 scaling of each tile's sum
    torch.testing.assert_close(y, F.linear(_int16_rows(x), layer.dequantized(), layer.bias), rtol=1e-5, atol=1e-5)
    # and the int16 activations cost far less than the int8 weights' own rounding
    assert sqnr_db(F.linear(x, layer.dequantized(), layer.bias), y) > 70


@pytest.mark.parametrize("out_features,in_features", [(5, 70), (101, 2500), (8, 2048), (8, 2112)])
def test_packing_round_trips_through_one_or_several_column_tiles(out_features, in_features):
    q = torch.randint(-127, 128, (out_features, in_features), dtype=torch.int8,
                      generator=torch.Generator().manual_seed(5))
    packed = int8_gemv.pack(q)
    assert packed.shape == (-(-out_features // 4) * 4, -(-in_features // 64) * 64)
    assert torch.equal(int8_gemv.unpack(packed, out_features, in_features), q)


@needs_compiler
@pytest.mark.parametrize("out_features,in_features", [(64, 128), (101, 70), (20, 2500)])  # the last: column tiles
def test_int8_layer_rounds_activations_to_int16_for_few_rows_and_to_8_bits_for_prompts(out_features, in_features):
    layer = _int8_layer(out_features, in_features, bias=True)
    with torch.no_grad():
        for rows in (1, int8_gemv.GEMM_MIN_ROWS - 1):
            x = torch.randn(1, rows, in_features)
            torch.testing.assert_close(layer(x), F.linear(_int16_rows(x), layer.dequantized(), layer.bias),
                                       rtol=1e-5, atol=1e-5)
        for rows in (int8_gemv.GEMM_MIN_ROWS, 37, 130):  # passes of 4 rows and a remainder
            x = torch.randn(1, rows, in_features)
            exact = F.linear(_uint8_rows(x), layer.dequantized(), layer.bias)  # the zero point cancelled exactly
            torch.testing.assert_close(layer(x), exact, rtol=1e-4, atol=1e-4)
            assert sqnr_db(F.linear(x, layer.dequantized(), layer.bias), layer(x)) > 30


@needs_compiler
def test_int8_gemv_runs_inside_a_compiled_graph():
    layer = _int8_layer(48, 64, bias=True)
    model = torch.nn.Sequential(layer, torch.nn.GELU())
    x = torch.randn(2, 64)
    with torch.no_grad():
        compiled = torch.compile(model, fullgraph=True, dynamic=False)
        torch.testing.assert_close(compiled(x), model(x))


@needs_compiler
@pytest.mark.parametrize("out_features,in_features", [(96, 768), (37, 100), (5, 5), (3, 130)])  # masked tails
@pytest.mark.parametrize("rows", [1, 2, 4])
@pytest.mark.parametrize("bias", [True, False])
def test_fp32_gemv_equals_pytorchs_linear(out_features, in_features, rows, bias):
    assert ops.load_ops()
    torch.manual_seed(0)
    layer = torch.nn.Linear(in_features, out_features, bias=bias)
    x = torch.randn(rows, in_features)
    with torch.no_grad():
        y = torch.ops.genfast.fp32_gemv(x, layer.weight, layer.bias)
        torch.testing.assert_close(y, layer(x), rtol=1e-5, atol=1e-5)


@needs_compiler
def test_gemv_linear_shares_its_weights_and_uses_the_kernel_only_where_it_can(monkeypatch):
    assert ops.load_ops()
    torch.manual_seed(0)
    dense = torch.nn.Linear(64, 48)
    layer = GemvLinear.sharing(dense)
    assert layer.weight is dense.weight and layer.bias is dense.bias
    assert list(layer.state_dict()) == ["weight", "bias"]
    calls, original = [], torch.ops.genfast.fp32_gemv
    monkeypatch.setattr(torch.ops.genfast, "fp32_gemv", lambda *args: calls.append(args[0].shape[0]) or original(*args))
    x = torch.randn(1, fp32_gemv.MAX_ROWS, 64)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), dense(x), rtol=1e-5, atol=1e-5)
        layer(torch.randn(1, fp32_gemv.MAX_ROWS + 1, 64))  # a prefill: PyTorch's GEMM
        GemvLinear.sharing(torch.nn.Linear(64, 48).bfloat16())(torch.randn(1, 64).bfloat16())  # not fp32
    assert calls == [fp32_gemv.MAX_ROWS]
    y = layer(torch.randn(1, 64, requires_grad=True))  # gradients wanted: PyTorch's autograd path
    y.sum().backward()
    assert dense.weight.grad is not None


@needs_compiler
def test_fp32_gemv_runs_inside_a_compiled_graph():
    torch.manual_seed(0)
    model = torch.nn.Sequential(GemvLinear.sharing(torch.nn.Linear(64, 48)), torch.nn.GELU())
    x = torch.randn(1, 64)
    with torch.no_grad():
        compiled = torch.compile(model, fullgraph=True, dynamic=False)
        torch.testing.assert_close(compiled(x), model(x))
        with torch.profiler.profile() as prof:
            compiled(x)
    assert "genfast::fp32_gemv" in {event.key for event in prof.key_averages()}


def _masked_sdpa(q, k, v, lengths):
    visible = torch.arange(k.shape[2])[None, None, None, :] < lengths[:, None, None, None]
    return F.scaled_dot_product_attention(q, k, v, attn_mask=visible, enable_gqa=k.shape[1] != q.shape[1])


@needs_compiler
@pytest.mark.parametrize("heads,kv_heads,head_dim", [(4, 4, 64), (8, 2, 40)], ids=["mha", "gqa-odd-dim"])
def test_decode_attention_equals_sdpa_over_each_rows_filled_slots(heads, kv_heads, head_dim):
    torch.manual_seed(0)
    q = torch.randn(3, heads, 1, head_dim)
    k, v = torch.randn(2, 3, kv_heads, 20, head_dim)  # rows of 20 slots, filled to different lengths
    lengths = torch.tensor([1, 7, 20])
    assert decode_attention.supports(q, k, v)
    out = decode_attention.decode_attention(q, k, v, lengths)
    torch.testing.assert_close(out, _masked_sdpa(q, k, v, lengths), rtol=1e-5, atol=1e-5)


@needs_compiler
def test_decode_attention_reads_a_row_slice_of_the_cache():
    """The serving engine hands over views of some cache rows: strides, not shapes, locate them."""
    torch.manual_seed(1)
    k, v = torch.randn(2, 4, 2, 16, 32)
    q = torch.randn(2, 2, 1, 32)
    lengths = torch.tensor([5, 16])
    out = decode_attention.decode_attention(q, k[1:3], v[1:3], lengths)
    torch.testing.assert_close(out, _masked_sdpa(q, k[1:3], v[1:3], lengths), rtol=1e-5, atol=1e-5)


def test_decode_attention_declines_what_it_cannot_run():
    k = torch.zeros(1, 2, 8, 16)
    assert not decode_attention.supports(torch.zeros(1, 2, 2, 16), k, k)  # two queries per row
    assert not decode_attention.supports(torch.zeros(1, 2, 1, 16).bfloat16(), k.bfloat16(), k.bfloat16())


def test_a_source_that_does_not_compile_is_refused_without_leaving_a_library(tmp_path, monkeypatch):
    monkeypatch.setenv("GENFAST_CACHE_DIR", str(tmp_path / "cache"))
    source = tmp_path / "broken.cpp"
    source.write_text("this is not C++;\n")
    if ops._compiler() is None:
        pytest.skip("no C++ compiler on this machine")
    assert ops.build(source, ["-O3"]) is False
    assert not list((tmp_path / "cache").rglob("*.so"))


def test_without_a_compiler_kernels_fall_back_with_a_warning(monkeypatch):
    monkeypatch.setattr(ops, "_compiler", lambda: None)
    with pytest.warns(UserWarning, match="no C\\+\\+ compiler found"):
        assert ops.load_ops.__wrapped__() is False


def test_a_failed_build_falls_back_with_a_warning(monkeypatch):
    monkeypatch.setattr(ops, "build", lambda source, flags: False)
    monkeypatch.setattr(ops, "_compiler", lambda: "/usr/bin/c++")
    with pytest.warns(UserWarning, match="could not build ops.cpp"):
        assert ops.load_ops.__wrapped__() is False


def test_native_kernels_can_be_switched_off(monkeypatch):
    monkeypatch.setenv("GENFAST_NATIVE_KERNELS", "0")
    assert ops.load_ops.__wrapped__() is False


def test_the_build_is_keyed_by_sources_and_flags(tmp_path):
    source = tmp_path / "ops.cpp"
    source.write_text("// v1\n")
    (tmp_path / "kernel.c").write_text("/* v1 */\n")
    first = ops._build_key(source, ["-O3"])
    assert ops._build_key(source, ["-O3"]) == first
    assert ops._build_key(source, ["-O2"]) != first
    (tmp_path / "kernel.c").write_text("/* v2 */\n")  # an included kernel changed: rebuild
    assert ops._build_key(source, ["-O3"]) != first


@needs_compiler
def test_int8_layer_holds_its_weights_once_and_still_saves_the_plain_form():
    torch.manual_seed(2)
    dense = torch.nn.Linear(128, 101)
    q, _ = quantize_per_channel(dense.weight.detach())
    layer = Int8WeightOnlyLinear.from_dense(dense)
    assert [b.shape for b in layer.buffers() if b.dtype == torch.int8] == [layer.gemv_weight.shape]  # packed only
    state = layer.state_dict()
    assert torch.equal(state["qweight"], q)
    reloaded = Int8WeightOnlyLinear.from_dense(torch.nn.Linear(128, 101))
    reloaded.load_state_dict(state)
    with torch.no_grad():
        for rows in (1, int8_gemv.GEMM_MIN_ROWS):  # the int16 and the 8-bit activation products
            x = torch.randn(rows, 128)
            torch.testing.assert_close(reloaded(x), layer(x))
            assert sqnr_db(F.linear(x, layer.dequantized(), layer.bias), layer(x)) > 40


@needs_compiler
def test_decode_attention_refuses_lengths_past_the_cache():
    q, k = torch.zeros(1, 2, 1, 16), torch.zeros(1, 2, 8, 16)
    for bad in (0, 9):
        with pytest.raises(RuntimeError, match="outside 1..8"):
            decode_attention.decode_attention(q, k, k, torch.tensor([bad]))


_PORTABLE_CHECK = """
import torch
from genfast.kernels import ops, int8_gemv as g, decode_attention as da
ops.FLAG_SETS = (["-O3"],)  # no -march=native, no OpenMP: the portable C paths
assert ops.load_ops()
torch.manual_seed(0)
for n, k, rows in [(20, 2500, 3), (8, 4096, 1), (101, 70, 6)]:
    q = torch.randint(-127, 128, (n, k), dtype=torch.int8)
    s, b = torch.rand(n) + 0.5, torch.randn(n)
    p, x = g.pack(q), torch.randn(rows, k)
    y = g.int8_gemv(x, p, g.pad_rows(s, p), g.pad_rows(b, p), n)
    step = x.abs().amax(-1, keepdim=True) / 32767  # the int16 activations
    torch.testing.assert_close(y, torch.round(x / step) * step @ (q.float() * s[:, None]).T + b, rtol=1e-4, atol=1e-3)
from genfast.kernels import int4_gemv as g4
from genfast.compress.quantize.int4_weight import quantize_groups, unpack
for n, k, group, rows in [(101, 64, 32, 5), (40, 768, 64, 2)]:  # int4: the portable sums
    packed, scale, minimum = quantize_groups(torch.randn(n, k), group)
    q, x, b = unpack(packed), torch.randn(rows, k), torch.randn(n)
    y = g4.int4_gemv(x, g4.pack(q), *g4.split_groups(g4.group_tensor(scale, minimum), g4.pack(q)),
                     g4.pad_rows(b), group, n)
    deq = (q.float().reshape(n, -1, group) * scale[..., None] + minimum[..., None]).reshape(n, k)
    step = x.abs().amax(-1, keepdim=True) / 127
    torch.testing.assert_close(y, torch.round(x / step) * step @ deq.T + b, rtol=1e-4, atol=1e-4)
    bf16 = torch.ops.genfast.int4_dequantize(g4.pack(q), *g4.split_groups(g4.group_tensor(scale, minimum), g4.pack(q)),
                                             group)
    assert torch.equal(bf16[:n], deq.bfloat16())
w, x = torch.randn(37, 130), torch.randn(3, 130)  # fp32: the portable dot and its tail
torch.testing.assert_close(torch.ops.genfast.fp32_gemv(x, w, None), x @ w.T, rtol=1e-4, atol=1e-4)
q, kc, vc = torch.randn(2, 4, 1, 24), torch.randn(2, 2, 10, 24), torch.randn(2, 2, 10, 24)
out = da.decode_attention(q, kc, vc, torch.tensor([3, 10]))
for i, n in enumerate([3, 10]):
    k, v = (c[i:i + 1, :, :n].repeat_interleave(2, 1) for c in (kc, vc))
    ref = torch.nn.functional.scaled_dot_product_attention(q[i:i + 1], k, v)
    torch.testing.assert_close(out[i:i + 1], ref, rtol=1e-4, atol=1e-5)
from genfast.compress import compress_
from genfast.compress.quantize.int8_weight import Int8WeightOnly
from genfast.models.tiny import tiny_model
from genfast.runtime.torch_runtime import TorchRuntime
for arch in ("gpt2", "llama"):  # the one-operator layer stack against the per-op path
    model, _ = tiny_model(arch, hidden=96)
    compress_(model, Int8WeightOnly())
    rt = TorchRuntime(model, max_cache_len=16)
    assert rt.decoder.native_plans is not None
    steps = []
    for plans in (rt.decoder.native_plans, None):
        rt.decoder.native_plans = plans
        first, cache = rt.prefill(torch.tensor([[5, 6, 7]]))
        steps.append(rt.decode(first.argmax(-1), cache)[0])
    torch.testing.assert_close(steps[0], steps[1], rtol=1e-4, atol=1e-4)
"""


@needs_compiler
@pytest.mark.slow
def test_portable_kernels_built_without_native_flags_still_answer_right(tmp_path):
    """The paths a CPU without AVX-512 (or a compiler without OpenMP) runs, in a process of their own."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "GENFAST_CACHE_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", _PORTABLE_CHECK], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]


def _int4_layer(out_features: int, in_features: int, group: int, bias: bool = True):
    from genfast.compress.quantize.int4_weight import Int4WeightOnlyLinear

    torch.manual_seed(1)
    return Int4WeightOnlyLinear.from_dense(torch.nn.Linear(in_features, out_features, bias=bias), group)


@needs_compiler
@pytest.mark.skipif(not int4_gemv.fast(), reason="genfast's int4 kernel runs on AVX512-VNNI CPUs")
@pytest.mark.parametrize("out_features,in_features,group", [(96, 256, 32), (101, 64, 32), (7, 512, 128), (40, 768, 64)])
@pytest.mark.parametrize("rows", [1, 3, 4, 6, 31, 32, 130])
def test_int4_kernel_equals_a_matmul_with_the_dequantized_weights(out_features, in_features, group, rows):
    layer = _int4_layer(out_features, in_features, group)
    assert layer.kernel_packed is not None and layer.qweight is None  # its own layout, held once
    x = torch.randn(rows, in_features)
    with torch.no_grad():
        if rows < int4_gemv.PROMPT_ROWS:  # int8 rows: the same 127 steps, exact group sums
            exact = F.linear(_uint8_rows(x), layer.dequantized(), layer.bias)
            torch.testing.assert_close(layer(x), exact, rtol=1e-5, atol=1e-5)
        else:  # a prompt: bf16 weights (dequantized exactly, rounded once) in a bf16 GEMM
            weight = layer.dequantized().bfloat16()
            exact = (x.bfloat16() @ weight.T).float() + layer.bias
            torch.testing.assert_close(layer(x), exact, rtol=1e-2, atol=1e-2)
            assert sqnr_db(F.linear(x, layer.dequantized(), layer.bias), layer(x)) > 40


@needs_compiler
@pytest.mark.skipif(not int4_gemv.fast(), reason="genfast's int4 kernel runs on AVX512-VNNI CPUs")
def test_int4_layer_saves_the_plain_form_and_reloads_to_the_same_outputs():
    from genfast.compress.quantize.int4_weight import Int4WeightOnlyLinear, quantize_groups

    layer = _int4_layer(101, 128, 32)
    torch.manual_seed(1)
    dense = torch.nn.Linear(128, 101)  # the same weights _int4_layer quantized
    packed, scale, minimum = quantize_groups(dense.weight.detach(), 32)
    state = layer.state_dict()
    assert torch.equal(state["qweight"], packed) and torch.equal(state["scale"], scale)
    assert torch.equal(state["minimum"], minimum)
    reloaded = Int4WeightOnlyLinear.from_dense(torch.nn.Linear(128, 101), 32)
    reloaded.load_state_dict(state)
    x = torch.randn(3, 128)
    with torch.no_grad():
        assert torch.equal(reloaded(x), layer(x))
