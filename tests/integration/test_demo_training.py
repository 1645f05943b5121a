import json
import textwrap
from pathlib import Path

import torch

from genfast.models.demo.corpus import stdlib_split
from genfast.models.demo.train import DemoTrainConfig, train, unigram_perplexity
from genfast.models.loading import load


def _fake_stdlib(root: Path) -> Path:
    code = textwrap.dedent('''
        import os


        class Thing:
            """A thing."""

            def __init__(self, name):
                self.name = name

            def path(self):
                return os.path.join("/tmp", self.name)
    ''')
    for i in range(12):
        (root / f"mod{i}.py").write_text(code.replace("Thing", f"Thing{i}") * 3)
    (root / "test").mkdir()
    (root / "test" / "test_mod.py").write_text("assert False\n")  # tests are left out
    return root


def test_split_is_by_file_deterministic_and_skips_tests(tmp_path):
    root = _fake_stdlib(tmp_path)
    a, b = stdlib_split(0.3, root), stdlib_split(0.3, root)
    assert a == b
    assert set(a.train).isdisjoint(a.heldout)
    assert sorted(a.train + a.heldout) == sorted(f"mod{i}.py" for i in range(12))
    assert len(a.sha256) == 64


def test_unigram_baseline():
    train_ids = torch.tensor([0, 0, 0, 1])
    # add-one smoothed: p(0) = 4/6, p(1) = 2/6 over a vocabulary of 2
    assert abs(unigram_perplexity(train_ids, torch.tensor([0, 1]), 2) - (6 / 4 * 6 / 2) ** 0.5) < 1e-9


def test_train_export_and_resume(tmp_path):
    (tmp_path / "src").mkdir()
    cfg = DemoTrainConfig(out_dir=tmp_path / "out", work_dir=tmp_path / "work",
                          corpus_root=_fake_stdlib(tmp_path / "src"), vocab_size=300,
                          hidden_size=32, intermediate_size=64, num_layers=1, num_heads=2, num_kv_heads=1,
                          context=64, seq_len=32, batch_size=2, max_steps=4, warmup_steps=1, eval_every=2,
                          ckpt_every=2, eval_windows=2, threads=1, heldout_text_bytes=2000,
                          heldout_fraction=0.3)
    logs = []
    summary = train(cfg, log=logs.append)
    assert summary["steps"] == 4
    assert [h["step"] for h in summary["history"]] == [2, 4]
    assert summary["heldout_perplexity"] > 1 and summary["unigram_perplexity"] > 1
    for name in ("config.json", "model.safetensors", "tokenizer.json", "generation_config.json", "heldout.txt",
                 "training.json"):
        assert (cfg.out_dir / name).is_file()
    handle = load(str(cfg.out_dir))
    assert handle.config.num_key_value_heads == 1
    corpus = json.loads((cfg.out_dir / "training.json").read_text())["corpus"]
    assert corpus["heldout_file_list"] and corpus["train_file_list"]

    cfg.max_steps = 6
    logs.clear()
    summary = train(cfg, log=logs.append)
    assert "resumed at step 4" in logs
    assert summary["steps"] == 6


def test_image_demo_training_resumes_to_the_same_weights(tmp_path):
    """Killed after 3 steps and resumed to 6 = 6 steps straight (seeded batches, EMA in the checkpoint)."""
    from safetensors.torch import load_file

    from genfast.models.demo_image.train import ImageDemoTrainConfig
    from genfast.models.demo_image.train import train as train_image

    def config(name: str, steps: int) -> ImageDemoTrainConfig:
        return ImageDemoTrainConfig(out_dir=tmp_path / name / "out", work_dir=tmp_path / name / "work", image_size=8,
                                    block_out_channels=(16, 16, 32), train_timesteps=50, batch_size=8,
                                    max_steps=steps, warmup_steps=2, threads=1, bf16_autocast=False,
                                    classifier_steps=20, evaluation_per_class=0, log_every=3, ckpt_every=3)

    straight = train_image(config("straight", 6), log=lambda _: None)
    train_image(config("resumed", 3), log=lambda _: None)
    resumed = train_image(config("resumed", 6), log=lambda _: None)
    assert straight["steps"] == resumed["steps"] == 6
    a = load_file(tmp_path / "straight" / "out" / "unet" / "diffusion_pytorch_model.safetensors")
    b = load_file(tmp_path / "resumed" / "out" / "unet" / "diffusion_pytorch_model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
