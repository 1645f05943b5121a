"""Train genfast's bundled image demo: a class-conditional diffusion UNet that draws digits.

A ``diffusers.UNet2DModel`` (class embeddings, epsilon prediction, cosine noise schedule) on the
training half of scikit-learn's digits, with an exponential moving average of its weights (what
is shipped), and the digit classifier that judges it. Seeded, resumable (checkpoint every
``ckpt_every`` steps, the same batches after a restart) and bounded by a time budget. Run it with
``genfast train-demo --image``.
"""

from __future__ import annotations

import copy
import json
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from genfast.images.digit_classifier import accuracy, train_classifier
from genfast.images.digits import load_digits_split
from genfast.training import TrainState, print_line, save_checkpoint, warmup_cosine_lr


@dataclass
class ImageDemoTrainConfig:
    """Everything that decides the image demo; saved beside it as ``training.json``."""

    out_dir: Path = Path("src/genfast/models/demo_image/weights")
    """Where the finished pipeline directory (unet/, scheduler/, classifier/) is written."""
    work_dir: Path = Path(".genfast-work/demo-image")
    """Where the resumable checkpoint lives."""
    seed: int = 0
    image_size: int = 16
    block_out_channels: tuple[int, ...] = (32, 64, 64)
    attention_levels: tuple[bool, ...] = (False, True, False)
    """Which resolution levels carry self-attention (the 8x8 one)."""
    train_timesteps: int = 1000
    batch_size: int = 128
    lr: float = 1e-3
    min_lr: float = 5e-5
    warmup_steps: int = 200
    max_steps: int = 8000
    max_minutes: float = 50.0
    """Stop (and export) after this much training time even if ``max_steps`` is not reached."""
    ema_decay: float = 0.999
    ckpt_every: int = 200
    log_every: int = 200
    threads: int = 2
    bf16_autocast: bool = True
    classifier_steps: int = 1500
    evaluation_per_class: int = 20
    """Images of each digit drawn with the model's own sampler to evaluate it (0: no evaluation)."""
    version: int = 1


def build_unet(cfg: ImageDemoTrainConfig):
    """A freshly initialised class-conditional UNet of the demo's shape."""
    from diffusers import UNet2DModel

    down = tuple("AttnDownBlock2D" if a else "DownBlock2D" for a in cfg.attention_levels)
    up = tuple("AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(cfg.attention_levels))
    torch.manual_seed(cfg.seed)
    return UNet2DModel(sample_size=cfg.image_size, in_channels=1, out_channels=1, num_class_embeds=10,
                       block_out_channels=cfg.block_out_channels, down_block_types=down, up_block_types=up,
                       layers_per_block=1, norm_num_groups=16, attention_head_dim=16)


def build_scheduler(cfg: ImageDemoTrainConfig):
    """The noise schedule the UNet is trained under (and sampled with by default)."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=cfg.train_timesteps, beta_schedule="squaredcos_cap_v2",
                         prediction_type="epsilon", clip_sample=True)


def train(cfg: ImageDemoTrainConfig, log: Callable[[str], None] = print_line) -> dict:
    """Train (or resume) the image demo and export it to ``cfg.out_dir``; return the summary."""
    torch.set_num_threads(cfg.threads)
    cfg.work_dir.mkdir(parents=True, exist_ok=True)
    data = load_digits_split(cfg.image_size, seed=cfg.seed)
    unet, scheduler = build_unet(cfg), build_scheduler(cfg)
    ema = copy.deepcopy(unet).requires_grad_(False)
    opt = torch.optim.AdamW(unet.parameters(), lr=cfg.lr, weight_decay=1e-4)
    state = TrainState()
    ckpt = cfg.work_dir / "ckpt.pt"
    if ckpt.exists():
        saved = torch.load(ckpt, weights_only=False)
        unet.load_state_dict(saved["unet"])
        ema.load_state_dict(saved["ema"])
        opt.load_state_dict(saved["opt"])
        state = TrainState(**saved["state"])
        log(f"resumed at step {state.step}")
    log(f"UNet: {sum(p.numel() for p in unet.parameters()) / 1e6:.2f}M parameters, "
        f"{len(data.train_images)} training images")
    alphas = scheduler.alphas_cumprod
    unet.train()
    running = 0.0
    while state.step < cfg.max_steps and state.elapsed_s < cfg.max_minutes * 60:
        t0 = time.perf_counter()
        for group in opt.param_groups:
            group["lr"] = warmup_cosine_lr(state.step, cfg.lr, cfg.min_lr, cfg.warmup_steps,
                                           cfg.max_steps - cfg.warmup_steps,
                                           time_fraction=state.elapsed_s / (cfg.max_minutes * 60))
        gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + state.step)
        idx = torch.randint(0, len(data.train_images), (cfg.batch_size,), generator=gen)
        x0, labels = data.train_images[idx], data.train_labels[idx]
        noise = torch.randn(x0.shape, generator=gen)
        t = torch.randint(0, cfg.train_timesteps, (cfg.batch_size,), generator=gen)
        a = alphas[t].view(-1, 1, 1, 1)
        xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16_autocast):
            pred = unet(xt, t, class_labels=labels).sample
        loss = torch.nn.functional.mse_loss(pred.float(), noise)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        with torch.no_grad():
            for e, p in zip(ema.parameters(), unet.parameters(), strict=True):
                e.lerp_(p, 1 - cfg.ema_decay)
        state.step += 1
        state.elapsed_s += time.perf_counter() - t0
        running += loss.item()
        if state.step % cfg.log_every == 0:
            state.history.append({"step": state.step, "loss": round(running / cfg.log_every, 5),
                                  "elapsed_s": round(state.elapsed_s, 1)})
            log(f"step {state.step} loss {running / cfg.log_every:.4f} {state.elapsed_s / 60:.1f} min")
            running = 0.0
        if state.step % cfg.ckpt_every == 0:
            save_checkpoint(ckpt, state, unet=unet, ema=ema, opt=opt)
    save_checkpoint(ckpt, state, unet=unet, ema=ema, opt=opt)
    return export(cfg, ema, scheduler, data, state, log)


def export(cfg: ImageDemoTrainConfig, unet, scheduler, data, state: TrainState, log) -> dict:
    """Write the pipeline directory (UNet, scheduler, classifier) and ``training.json``."""
    out = cfg.out_dir
    out.mkdir(parents=True, exist_ok=True)
    unet.eval().save_pretrained(out / "unet", safe_serialization=True)
    scheduler.save_pretrained(out / "scheduler")
    (out / "model_index.json").write_text(json.dumps({
        "_class_name": "DDPMPipeline",
        "unet": ["diffusers", "UNet2DModel"],
        "scheduler": ["diffusers", "DDPMScheduler"],
    }, indent=2), encoding="utf-8")
    log("training the digit classifier")
    classifier = train_classifier(data.train_images, data.train_labels, steps=cfg.classifier_steps, seed=cfg.seed)
    classifier.save(out / "classifier")
    summary = {
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()},
        "parameters": sum(p.numel() for p in unet.parameters()),
        "steps": state.step,
        "training_minutes": round(state.elapsed_s / 60, 1),
        "data": {"source": "sklearn.datasets.load_digits (8x8, upsampled)", "train_images": len(data.train_images),
                 "heldout_images": len(data.heldout_images)},
        "classifier_heldout_accuracy": round(accuracy(classifier, data.heldout_images, data.heldout_labels), 4),
        "machine": {"cpu": platform.processor() or platform.machine(), "threads": cfg.threads,
                    "torch": torch.__version__},
        "history": state.history,
    }
    (out / "training.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    log(f"exported to {out}: classifier held-out accuracy {summary['classifier_heldout_accuracy']}")
    return record_evaluation(out, cfg.evaluation_per_class, log) if cfg.evaluation_per_class else summary


def record_evaluation(out: Path, per_class: int = 20, log: Callable[[str], None] = print_line) -> dict:
    """Evaluate the exported demo (its own sampler, ``per_class`` images of each digit), add the
    figures to ``training.json`` and write ``samples.png`` beside it; returns the updated summary."""
    from genfast.images.model import load_image_model
    from genfast.models.demo_image.evaluate import evaluate_demo

    log(f"drawing {10 * per_class} digits with the model's own sampler to evaluate it")
    evaluation = evaluate_demo(load_image_model(str(out)), per_class=per_class, grid=out / "samples.png")
    summary = json.loads((out / "training.json").read_text(encoding="utf-8"))
    summary["evaluation"] = evaluation
    (out / "training.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    fd = evaluation["frechet_distance_to_heldout"]
    log(f"recognised as the requested digit: {evaluation['recognised_as_requested']:.1%} (chance 10%); "
        f"Fréchet distance to held-out digits {fd['generated']['value']:.1f} (noise {fd['noise']['value']:.0f}, "
        f"real training images {fd['real_train_images']['value']:.1f})")
    return summary
