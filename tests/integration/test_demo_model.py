"""The bundled demo model: offline loading, real learning, and the quality checks on it."""

import copy
import json
import re

import pytest
import torch

from genfast import envs
from genfast.models.loading import load
from genfast.quality.budget import QualityBudget
from genfast.quality.compare import QualitySettings, compare
from genfast.runtime.generate import generate
from genfast.runtime.torch_runtime import TorchRuntime
from genfast.textdata import demo_heldout_text

SETTINGS = QualitySettings(window=128, max_windows=24, prompts=6, prompt_len=32, new_tokens=16, resamples=200)


@pytest.fixture(scope="module")
def demo():
    return load("demo")


def test_loads_offline_with_plain_transformers(monkeypatch):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    path = envs.demo_model_dir()
    model = AutoModelForCausalLM.from_pretrained(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    assert type(model).__name__ == "LlamaForCausalLM"
    assert model.config.num_key_value_heads < model.config.num_attention_heads  # grouped-query attention
    assert 7000 < len(tokenizer) <= 8192
    assert 10e6 < sum(p.numel() for p in model.parameters()) < 30e6


def test_training_record_and_heldout_text():
    record = json.loads((envs.demo_model_dir() / "training.json").read_text())
    assert record["heldout_perplexity"] < record["unigram_perplexity"] / 5
    assert record["corpus"]["heldout_files"] > 0 and len(record["corpus"]["sha256"]) == 64
    text = demo_heldout_text()
    assert 10_000 < len(text) <= 400_000


def test_greedy_completions_look_like_python(demo):
    import io
    import tokenize

    from genfast.runtime.healing import complete

    runtime = TorchRuntime(demo.model)
    # a name after `def`, a module after `import`, a name or base list after `class`
    patterns = {"def ": r"^def [A-Za-z_]\w*", "import ": r"^import [A-Za-z_][\w.]*", "class ": r"^class [\w(]"}
    for prompt, pattern in patterns.items():
        text = complete(runtime, demo.tokenizer, prompt, 32)
        assert re.match(pattern, text), text
        lines = text.splitlines(keepends=True)[:-1] or [text]  # the last line may be cut mid-token
        kinds = {t.type for t in tokenize.generate_tokens(io.StringIO("".join(lines)).readline)
                 if t.type != tokenize.ENDMARKER}
        assert tokenize.ERRORTOKEN not in kinds and tokenize.NAME in kinds, text


def test_reference_against_itself_passes(demo):
    result = compare(demo, demo, demo.tokenizer, settings=SETTINGS, budget=QualityBudget.parse("0%", "1.0", "0"))
    assert result["budget"]["passed"]
    assert result["kl"]["value"] == pytest.approx(0, abs=1e-6) and result["top1_agreement"]["value"] == 1.0
    assert result["greedy"]["agreement"]["value"] == 1.0


def test_noise_damaged_copy_fails_the_budget(demo):
    damaged = copy.deepcopy(demo.model)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in damaged.parameters():
            p.add_(torch.randn_like(p) * 0.3 * p.std())
    result = compare(demo, damaged, demo.tokenizer, settings=SETTINGS, budget=QualityBudget.parse("2%", "0.95"))
    assert not result["budget"]["passed"]
    change = result["perplexity"]["relative_change"]
    assert change["value"] > 0.02 and result["perplexity"]["significant"]


def _demo_prompts(demo, batch=2, length=32):
    from genfast.profiling.workload import prompt_windows

    return prompt_windows(demo.tokenizer(demo_heldout_text())["input_ids"], length, batch, seed=1)


@pytest.mark.parametrize("backend", ["torch", "torch-compile", "onnxruntime", "openvino"])
def test_every_backend_matches_the_fp32_reference_for_32_tokens(demo, backend):
    pytest.importorskip({"onnxruntime": "onnxruntime", "openvino": "openvino"}.get(backend, "torch"))
    from genfast.backends.registry import get_backend
    from genfast.runtime.hf import HFRuntime

    ids = _demo_prompts(demo)
    runtime = get_backend(backend).build(demo, batch=2, max_cache_len=80)
    assert torch.equal(generate(runtime, ids, 32), generate(HFRuntime(demo.model), ids, 32))


@pytest.mark.parametrize("backend, precision, budget", [
    ("onnxruntime", "int8", ("3%", "0.9")),
    ("openvino", "int8", ("2%", "0.95")),
    ("openvino", "int4", ("10%", "0.8")),
])
def test_quantized_backends_stay_inside_the_budget(demo, backend, precision, budget):
    pytest.importorskip(backend)
    from genfast.backends.registry import get_backend

    runtime = get_backend(backend).build(demo, precision=precision)
    result = compare(demo, runtime, demo.tokenizer, settings=SETTINGS, budget=QualityBudget.parse(*budget))
    assert result["budget"]["passed"], (result["perplexity"]["relative_change"], result["budget"]["failures"])


@pytest.mark.parametrize("step, budget", [
    ({"technique": "Int8WeightOnly"}, ("1%", "0.95")),
    ({"technique": "DynamicInt8"}, ("2%", "0.9")),
    ({"technique": "Int4WeightOnly", "group_size": 32}, ("5%", "0.85")),
    ({"technique": "CastPrecision", "dtype": "bf16"}, ("1%", "0.95")),
])
def test_pytorch_quantized_demo_stays_inside_the_issue_budget(demo, step, budget):
    from genfast.compress import compress_
    from genfast.compress.recipe import step_config
    from genfast.models.loading import from_model

    candidate = from_model(copy.deepcopy(demo.model), demo.tokenizer)
    compress_(candidate, step_config(step))
    result = compare(demo, candidate, demo.tokenizer, settings=SETTINGS, budget=QualityBudget.parse(*budget))
    assert result["budget"]["passed"], (result["perplexity"]["relative_change"], result["budget"]["failures"])


def test_bundled_student_is_a_pruned_distilled_demo_inside_its_budget(demo):
    student = load("demo-student")
    steps = [s["technique"] for s in student.recipe["steps"]]
    assert steps == ["PruneFFN", "PruneHeads", "Distill"]
    assert student.config.intermediate_size == 768 and student.config.num_key_value_heads == 3
    result = compare(demo, student, demo.tokenizer, settings=SETTINGS, budget=QualityBudget.parse("10%"))
    assert result["budget"]["passed"], result["perplexity"]["relative_change"]
    prompt = torch.tensor([demo.tokenizer("import os\n")["input_ids"]])
    assert generate(TorchRuntime(student.model), prompt, 8).shape == (1, 8)
