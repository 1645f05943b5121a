import importlib.util

import pytest
import torch

from genfast.backends.registry import build_runtime, get_backend
from genfast.errors import BackendUnavailableError, ConfigError
from genfast.models.loading import from_model, load
from genfast.models.tiny import tiny_model
from genfast.quality.budget import QualityBudget
from genfast.quality.compare import QualitySettings, compare
from genfast.runtime.generate import generate
from genfast.runtime.hf import HFRuntime

pytest.importorskip("onnxruntime")

FAST = QualitySettings(window=32, max_windows=8, prompts=4, prompt_len=16, new_tokens=8, resamples=100)


def _ids():
    return torch.randint(1, 400, (2, 12), generator=torch.Generator().manual_seed(0))


def test_fp32_greedy_equals_the_torch_reference(tokenizer, arch):
    model, _ = tiny_model(arch, tokenizer)
    runtime = get_backend("onnxruntime").build(from_model(model, tokenizer), threads=1)
    assert torch.equal(generate(runtime, _ids(), 32), generate(HFRuntime(model), _ids(), 32))
    torch.testing.assert_close(runtime.logits(_ids()), HFRuntime(model).logits(_ids()), rtol=1e-3, atol=1e-4)


def test_int8_stays_inside_a_quality_budget(tokenizer, tmp_path):
    model, _ = tiny_model("llama", tokenizer)
    runtime = get_backend("onnxruntime").build(from_model(model, tokenizer), precision="int8", export_dir=tmp_path)
    assert (tmp_path / "model.int8.onnx").stat().st_size < (tmp_path / "model.onnx").stat().st_size
    result = compare(model, runtime, tokenizer, settings=FAST, budget=QualityBudget.parse("2%", "0.9", "0.01"))
    assert result["budget"]["passed"], result["budget"]["failures"]


def test_unknown_precision(tokenizer):
    model, _ = tiny_model("gpt2", tokenizer)
    with pytest.raises(ConfigError, match="precision 'int3'"):
        build_runtime("onnxruntime", from_model(model, tokenizer), precision="int3")


def test_missing_extra_names_the_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "onnxruntime" else real(n, *a))
    with pytest.raises(BackendUnavailableError, match=r"pip install 'genfast\[onnx\]'"):
        get_backend("onnxruntime")


def test_failed_export_leaves_the_model_files_intact(tiny_dirs, monkeypatch, tmp_path):
    from genfast.runtime.onnx_export import ExportError

    before = {p.name: p.read_bytes() for p in tiny_dirs["llama"].iterdir()}

    def broken(*args, **kwargs):
        raise RuntimeError("Unsupported operator 'aten::frobnicate'\nmore detail")

    monkeypatch.setattr(torch.onnx, "export", broken)
    with pytest.raises(ExportError, match="aten::frobnicate"):
        get_backend("onnxruntime").build(load(str(tiny_dirs["llama"])), export_dir=tmp_path)
    assert {p.name: p.read_bytes() for p in tiny_dirs["llama"].iterdir()} == before
    assert not (tmp_path / "model.onnx").exists()


def test_roofline_bytes_match_the_torch_count(tokenizer):
    from genfast.profiling.memory import weight_bytes_read_per_step

    model, _ = tiny_model("gpt2", tokenizer)
    runtime = get_backend("onnxruntime").build(from_model(model, tokenizer))
    assert runtime.weight_bytes_per_step == pytest.approx(weight_bytes_read_per_step(model), rel=0.02)


def test_exports_are_cached_by_content(tokenizer, tmp_path, monkeypatch):
    import genfast.runtime.onnx_export as onnx_export

    calls = []
    real = onnx_export.export_onnx
    monkeypatch.setattr(onnx_export, "export_onnx", lambda *a, **k: calls.append(1) or real(*a, **k))
    model, _ = tiny_model("llama", tokenizer)
    backend = get_backend("onnxruntime")
    first = backend.build(from_model(model, tokenizer), precision="int8", export_cache=tmp_path)
    again = backend.build(from_model(model, tokenizer), precision="int8", export_cache=tmp_path)
    assert len(calls) == 1 and torch.equal(first.logits(_ids()), again.logits(_ids()))
    with torch.no_grad():
        model.model.layers[0].mlp.up_proj.weight.mul_(2)  # other weights: another export
    changed = backend.build(from_model(model, tokenizer), export_cache=tmp_path)
    assert len(calls) == 2 and not torch.equal(changed.logits(_ids()), first.logits(_ids()))
    assert len([p for p in tmp_path.iterdir() if p.name.startswith("onnx-")]) == 2
