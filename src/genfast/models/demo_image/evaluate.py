"""Proof that the image demo learned: samples of each digit judged by the shipped classifier, and
the Fréchet distance (classifier features) to held-out digits against noise and real images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from genfast.images.model import ImageModelHandle
from genfast.images.quality import classifier_outputs, fd_estimate
from genfast.images.runners import build_denoiser
from genfast.images.verify import draw, grid_png, quality_set, real_images


def evaluate_demo(handle: ImageModelHandle, per_class: int = 20, grid: Path | None = None,
                  sampler: str | None = None, steps: int | None = None) -> dict:
    """Draw ``per_class`` images of every digit with the model's own sampler (or ``sampler`` x ``steps``)
    and measure them; write a 10-row sample grid PNG to ``grid`` when given."""
    from genfast.images.digits import load_digits_split
    from genfast.images.optimize import ImageRecipe, with_recipe

    if sampler or steps:
        handle = with_recipe(handle, ImageRecipe(sampler=sampler, steps=steps))
    labels, seeds = quality_set(handle, 10 * per_class)
    images = draw(handle, build_denoiser(handle), labels, seeds)
    classes, features = classifier_outputs(handle.classifier, images)
    heldout = real_images(handle)
    _, real = classifier_outputs(handle.classifier, heldout)
    split = load_digits_split(handle.image_size)
    train_u8 = ((split.train_images[: len(heldout)] + 1) * 127.5).round().to(torch.uint8)
    noise_u8 = torch.randint(0, 256, images.shape, generator=torch.Generator().manual_seed(0)).to(torch.uint8)
    fd = {name: vars(fd_estimate(classifier_outputs(handle.classifier, x)[1], real))
          for name, x in (("generated", images), ("noise", noise_u8), ("real_train_images", train_u8))}
    if grid is not None:
        order = sorted(range(len(labels)), key=lambda i: (labels[i], i))
        rows = [images[[i for i in order if labels[i] == d][:10]] for d in range(10)]
        grid_png(rows, [f"digit {d}" for d in range(10)], grid, columns=10)
    per_digit = {d: float(np.mean(classes[np.array(labels) == d] == d)) for d in range(10)}
    return {"sampler": handle.sampler, "steps": handle.steps, "images": len(images),
            "recognised_as_requested": float(np.mean(classes == np.array(labels))),
            "recognised_per_digit": per_digit, "chance": 0.1,
            "frechet_distance_to_heldout": fd, "heldout_images": len(heldout)}
