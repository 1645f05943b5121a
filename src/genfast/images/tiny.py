"""A tiny random-weight class-conditional diffusion pipeline, built offline in milliseconds (tests)."""

from __future__ import annotations

import json
from pathlib import Path

import torch


def save_tiny_image_pipeline(path: Path, size: int = 8, train_timesteps: int = 50, classifier: bool = True,
                             seed: int = 0) -> Path:
    """Write a diffusers pipeline directory (8x8 grey UNet, 10 classes, DDPM over ``train_timesteps``)
    and, with ``classifier``, an untrained digit classifier beside it."""
    from diffusers import DDPMScheduler, UNet2DModel

    torch.manual_seed(seed)
    unet = UNet2DModel(sample_size=size, in_channels=1, out_channels=1, num_class_embeds=10,
                       block_out_channels=(8, 16), down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                       up_block_types=("AttnUpBlock2D", "UpBlock2D"), layers_per_block=1, norm_num_groups=4,
                       attention_head_dim=8)
    unet.save_pretrained(path / "unet")
    DDPMScheduler(num_train_timesteps=train_timesteps, beta_schedule="squaredcos_cap_v2").save_pretrained(
        path / "scheduler")
    (path / "model_index.json").write_text(json.dumps({"_class_name": "DDPMPipeline"}), encoding="utf-8")
    if classifier:
        from genfast.images.digit_classifier import DigitClassifier

        DigitClassifier(width=16).save(path / "classifier")
    return path
