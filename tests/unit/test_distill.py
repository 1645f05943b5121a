import pytest
import torch

from genfast.compress import compress_
from genfast.compress.distill import Distill, distill, distill_loss
from genfast.compress.prune import PruneFFN
from genfast.errors import ConfigError
from genfast.models.tiny import tiny_model
from genfast.textdata import stdlib_text


def test_loss_is_pure_kl_at_alpha_1_and_zero_for_a_perfect_student():
    logits = torch.randn(2, 5, 11)
    labels = torch.randint(0, 11, (2, 5))
    assert distill_loss(logits, logits, labels, 2.0, 1.0).item() == pytest.approx(0.0, abs=1e-6)
    ce = torch.nn.functional.cross_entropy(logits.reshape(-1, 11), labels.reshape(-1))
    assert distill_loss(logits, logits, labels, 2.0, 0.0).item() == pytest.approx(ce.item(), rel=1e-5)


def test_a_smaller_student_moves_towards_its_teacher(tokenizer, tmp_path):
    teacher, _ = tiny_model("llama", tokenizer)
    with torch.no_grad():  # peaked next-token distributions, so there is something to learn
        teacher.lm_head.weight.mul_(30)
    student, _ = tiny_model("llama", tokenizer, seed=1)
    compress_(student, PruneFFN(fraction=0.5))
    text = stdlib_text(60_000)
    cfg = Distill(steps=30, seq_len=32, batch_size=4, eval_every=10, ckpt_every=10, lr=1e-3, alpha=1.0)
    ids = torch.tensor([tokenizer(text[:4000])["input_ids"][:64]])

    def kl():
        with torch.no_grad():
            return distill_loss(student(ids).logits, teacher(ids).logits, ids, 1.0, 1.0).item()

    before = kl()
    history = distill(teacher, student, tokenizer, text, text[-20_000:], cfg, work_dir=tmp_path)
    assert [h["step"] for h in history] == [10, 20, 30]
    assert kl() < before
    assert (tmp_path / "distill.pt").exists()
    # resuming at the end trains no further
    assert distill(teacher, student, tokenizer, text, text[-20_000:], cfg, work_dir=tmp_path) == history


def test_bad_settings():
    with pytest.raises(ConfigError, match="alpha"):
        Distill(alpha=2).validate()


def test_learning_rate_warms_up_then_decays_to_its_floor():
    cfg = Distill(steps=100, lr=1e-3, warmup_steps=10, min_lr_ratio=0.1)
    assert cfg.lr_at(0) == pytest.approx(1e-4) and cfg.lr_at(9) == pytest.approx(1e-3)
    decay = [cfg.lr_at(s) for s in range(10, 101)]
    assert all(a > b for a, b in zip(decay, decay[1:])) and decay[-1] == pytest.approx(1e-4)
    stopped_early = Distill(steps=40, lr=1e-3, warmup_steps=10, min_lr_ratio=0.1, schedule_steps=100)
    assert [stopped_early.lr_at(s) for s in range(40)] == [cfg.lr_at(s) for s in range(40)]
