"""Train genfast's bundled demo model: a small Llama that completes Python code.

Reproducible (seeded, split by file hash), resumable (checkpoint every ``ckpt_every``
steps, same batches after a restart) and bounded by a time budget. Run it with
``genfast train-demo`` or ``python -m genfast.models.demo.train``.
"""

from __future__ import annotations

import json
import math
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from genfast.errors import DataError
from genfast.models.demo.corpus import CorpusSplit, stdlib_split
from genfast.training import TrainState, evaluate_loss, print_line, save_checkpoint, seeded_windows, warmup_cosine_lr

EOS = "<|endoftext|>"


@dataclass
class DemoTrainConfig:
    """Everything that decides the demo model; saved beside it as ``training.json``."""

    out_dir: Path = Path("src/genfast/models/demo/weights")
    """Where the finished Hugging Face model directory is written."""
    work_dir: Path = Path(".genfast-work/demo")
    """Where the resumable checkpoint and tokenized corpus live."""
    seed: int = 0
    vocab_size: int = 8192
    hidden_size: int = 384
    intermediate_size: int = 1024
    num_layers: int = 6
    num_heads: int = 8
    num_kv_heads: int = 4
    """Grouped-query attention: 2 query heads share each key/value head."""
    context: int = 512
    """Maximum positions the model supports (it is trained on ``seq_len``-token windows)."""
    seq_len: int = 256
    batch_size: int = 16
    lr: float = 1.5e-3
    min_lr: float = 1.5e-4
    warmup_steps: int = 100
    max_steps: int = 1600
    max_minutes: float = 65.0
    """Stop (and export) after this much training time even if ``max_steps`` is not reached."""
    eval_every: int = 100
    ckpt_every: int = 50
    eval_windows: int = 48
    heldout_text_bytes: int = 300_000
    """Size of the held-out text shipped with the model for quality checks."""
    threads: int = 2
    heldout_fraction: float = 0.05
    """Share of files (chosen by a hash of their path) held out for evaluation."""
    corpus_root: Path | None = None
    """Directory of ``.py`` files to learn from (default: this Python's standard library)."""
    bf16_autocast: bool = True
    """Train under bf16 autocast (fp32 master weights); ~1.35x faster on CPUs with AVX512-BF16."""
    version: int = 1


def train_tokenizer(texts: list[str], vocab_size: int):
    """Train a byte-level BPE tokenizer on ``texts`` and wrap it for transformers."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        min_frequency=2,
    )
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=EOS, eos_token=EOS, unk_token=EOS, pad_token=EOS
    )


def _encode(tokenizer, texts: list[str]) -> torch.Tensor:
    eos = tokenizer.eos_token_id
    ids: list[int] = []
    for t in texts:
        ids.extend(tokenizer(t)["input_ids"])
        ids.append(eos)
    return torch.tensor(ids, dtype=torch.int32)


def heldout_text(split: CorpusSplit, max_bytes: int) -> str:
    """The evaluation text shipped with the model: held-out code files up to ``max_bytes``.

    Codec tables (``encodings/``) are left out: they are data, nearly free to predict, and would
    make every quality check look better than it is.
    """
    parts, size = [], 0
    names = [n for n in split.heldout if not n.startswith("encodings/")]
    for text in split.read(names):
        if size + len(text) > max_bytes:
            continue
        parts.append(text)
        size += len(text)
    return EOS.join(parts)


def unigram_perplexity(train_ids: torch.Tensor, eval_ids: torch.Tensor, vocab_size: int) -> float:
    """Perplexity of a unigram model (add-one smoothed train frequencies) on ``eval_ids``."""
    counts = torch.bincount(train_ids.long(), minlength=vocab_size).double() + 1.0
    logp = (counts / counts.sum()).log()
    return math.exp(-logp[eval_ids.long()].mean().item())


def build_model(cfg: DemoTrainConfig, tokenizer):
    """A freshly initialised Llama of the demo's shape."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_kv_heads,
        max_position_embeddings=cfg.context,
        rope_theta=10000.0,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(cfg.seed)
    return LlamaForCausalLM(config)


SAMPLE_PROMPTS = ("def ", "import ", "class ")


def demo_samples(model, tokenizer, new_tokens: int = 48) -> dict[str, str]:
    """Greedy completions (with token healing) of the prompts the README shows."""
    from genfast.runtime.healing import complete
    from genfast.runtime.torch_runtime import TorchRuntime

    runtime = TorchRuntime(model)
    return {p: complete(runtime, tokenizer, p, new_tokens) for p in SAMPLE_PROMPTS}


def _prepare_data(cfg: DemoTrainConfig, split: CorpusSplit, log: Callable[[str], None]):
    from transformers import PreTrainedTokenizerFast

    tok_dir, data_path = cfg.work_dir / "tokenizer", cfg.work_dir / "data.pt"
    if tok_dir.exists() and data_path.exists():
        return PreTrainedTokenizerFast.from_pretrained(tok_dir), torch.load(data_path)
    log(f"training tokenizer on {len(split.train)} files")
    tokenizer = train_tokenizer(split.read(split.train), cfg.vocab_size)
    data = {
        "train": _encode(tokenizer, split.read(split.train)),
        "heldout": _encode(tokenizer, split.read(split.heldout)),
        "heldout_text": heldout_text(split, cfg.heldout_text_bytes),
    }
    for name in ("train", "heldout"):
        if len(data[name]) <= cfg.seq_len:
            raise DataError(f"The {name} split has {len(data[name])} tokens, not more than one window of "
                            f"{cfg.seq_len}.", "Use a larger corpus or change heldout_fraction.")
    tokenizer.save_pretrained(tok_dir)
    torch.save(data, data_path)
    return tokenizer, data


def train(cfg: DemoTrainConfig, log: Callable[[str], None] = print_line) -> dict:
    """Train (or resume) the demo model and export it to ``cfg.out_dir``; return the summary."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    torch.set_num_threads(cfg.threads)
    cfg.work_dir.mkdir(parents=True, exist_ok=True)
    split = stdlib_split(cfg.heldout_fraction, root=cfg.corpus_root)
    tokenizer, data = _prepare_data(cfg, split, log)
    train_ids, heldout_ids = data["train"], data["heldout"]
    log(f"corpus: {len(train_ids):,} train tokens, {len(heldout_ids):,} held-out tokens")

    model = build_model(cfg, tokenizer)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.95), weight_decay=0.1)
    state = TrainState()
    ckpt = cfg.work_dir / "ckpt.pt"
    if ckpt.exists():
        saved = torch.load(ckpt, weights_only=False)
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["opt"])
        state = TrainState(**saved["state"])
        log(f"resumed at step {state.step}")
    n_params = sum(p.numel() for p in model.parameters())
    log(f"model: {n_params / 1e6:.1f}M parameters")

    model.train()
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn()) as bar:
        task = bar.add_task("training", total=cfg.max_steps, completed=state.step)
        while state.step < cfg.max_steps and state.elapsed_s < cfg.max_minutes * 60:
            t0 = time.perf_counter()
            for group in opt.param_groups:
                group["lr"] = warmup_cosine_lr(state.step, cfg.lr, cfg.min_lr, cfg.warmup_steps,
                                               cfg.max_steps - cfg.warmup_steps,
                                               time_fraction=state.elapsed_s / (cfg.max_minutes * 60))
            x = seeded_windows(train_ids, state.step, cfg.seed, cfg.batch_size, cfg.seq_len)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16_autocast):
                loss = model(input_ids=x, labels=x).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            state.step += 1
            state.elapsed_s += time.perf_counter() - t0
            bar.update(task, completed=state.step, description=f"loss {loss.item():.3f}")
            if state.step % cfg.eval_every == 0:
                held = evaluate_loss(model, heldout_ids, cfg.seq_len, cfg.eval_windows)
                state.history.append({"step": state.step, "train_loss": loss.item(), "heldout_loss": held,
                                      "elapsed_s": round(state.elapsed_s, 1)})
                log(f"step {state.step} train {loss.item():.3f} held-out {held:.3f} "
                    f"(ppl {math.exp(held):.2f}) {state.elapsed_s / 60:.1f} min")
            if state.step % cfg.ckpt_every == 0:
                save_checkpoint(ckpt, state, model=model, opt=opt)
    save_checkpoint(ckpt, state, model=model, opt=opt)
    return export(cfg, model, tokenizer, data, split, state, log)


def export(cfg, model, tokenizer, data, split: CorpusSplit, state: TrainState, log) -> dict:
    """Write the model, tokenizer, held-out text and ``training.json`` to ``cfg.out_dir``."""
    from transformers import GenerationConfig

    model.eval()
    heldout_loss = evaluate_loss(model, data["heldout"], cfg.seq_len, 10_000)
    summary = {
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()},
        "parameters": sum(p.numel() for p in model.parameters()),
        "steps": state.step,
        "train_tokens_seen": state.step * cfg.batch_size * cfg.seq_len,
        "training_minutes": round(state.elapsed_s / 60, 1),
        "heldout_perplexity": round(math.exp(heldout_loss), 3),
        "unigram_perplexity": round(unigram_perplexity(data["train"], data["heldout"], len(tokenizer)), 3),
        "corpus": {
            "source": f"Python {platform.python_version()} standard library (tests left out)",
            "train_files": len(split.train),
            "heldout_files": len(split.heldout),
            "train_tokens": len(data["train"]),
            "heldout_tokens": len(data["heldout"]),
            "sha256": split.sha256,
            "heldout_file_list": split.heldout,
            "train_file_list": split.train,
        },
        "machine": {"cpu": platform.processor() or platform.machine(), "threads": cfg.threads,
                    "torch": torch.__version__},
        "history": state.history,
        "samples": demo_samples(model, tokenizer),
    }
    out = cfg.out_dir
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    GenerationConfig(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                     pad_token_id=tokenizer.pad_token_id, do_sample=False).save_pretrained(out)
    (out / "heldout.txt").write_text(data["heldout_text"], encoding="utf-8")
    (out / "training.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    log(f"exported to {out}: held-out ppl {summary['heldout_perplexity']} "
        f"(unigram {summary['unigram_perplexity']})")
    return summary


if __name__ == "__main__":
    from genfast.cli.main import main

    main(["train-demo"])
