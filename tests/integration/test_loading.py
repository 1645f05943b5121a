import json
import time

import pytest
import torch

from genfast.errors import ModelLoadError
from genfast.models.loading import load


def test_loads_each_architecture_with_tokenizer(tiny_dirs, arch):
    handle = load(str(tiny_dirs[arch]))
    assert handle.context_length == 256
    assert handle.dtype == torch.float32
    ids = handle.tokenizer("def f(x):\n    return x")["input_ids"]
    logits = handle.model(torch.tensor([ids])).logits
    assert logits.shape == (1, len(ids), len(handle.tokenizer))
    assert handle.generation_config is not None


def test_load_in_bf16(tiny_dirs):
    assert load(str(tiny_dirs["llama"]), dtype="bf16").dtype == torch.bfloat16


def test_missing_path(tmp_path):
    with pytest.raises(ModelLoadError, match="No model directory"):
        load(str(tmp_path / "nope"))


def test_file_instead_of_directory(tmp_path):
    f = tmp_path / "weights.bin"
    f.write_bytes(b"x")
    with pytest.raises(ModelLoadError, match="is a file"):
        load(str(f))


def test_directory_without_config(tmp_path):
    with pytest.raises(ModelLoadError, match="no config.json"):
        load(str(tmp_path))


def test_directory_that_is_not_a_causal_lm(tmp_path):
    from transformers import BertConfig

    BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64).save_pretrained(tmp_path)
    with pytest.raises(ModelLoadError, match="'bert' model, which is not a causal language model"):
        load(str(tmp_path))


def test_checkpoint_saved_for_another_task(tmp_path):
    (tmp_path / "config.json").write_text(
        json.dumps({"model_type": "llama", "architectures": ["LlamaForSequenceClassification"]}))
    with pytest.raises(ModelLoadError, match="LlamaForSequenceClassification, which is not a causal"):
        load(str(tmp_path))


def test_broken_config_json(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="not valid JSON"):
        load(str(tmp_path))


def test_hub_id_offline_fails_fast(monkeypatch, tmp_path):
    # Nothing listens on port 9 of loopback: the connection is refused at once, like a closed network.
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    start = time.perf_counter()
    with pytest.raises(ModelLoadError, match="model hub cannot be reached"):
        load("someorg/some-model")
    assert time.perf_counter() - start < 10


def test_incomplete_demo_install_names_the_file(monkeypatch, tmp_path):
    monkeypatch.setenv("GENFAST_DEMO_DIR", str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(ModelLoadError, match="model.safetensors is missing"):
        load("demo")
