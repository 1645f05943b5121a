"""scikit-learn's bundled handwritten digits as the image demo's data, split once for everything.

1,797 grey 8x8 images (0..16), upsampled bilinearly to ``size`` x ``size`` and scaled to [-1, 1]
(the range diffusion models are trained in). The split is seeded and fixed: the generator and the
classifier learn from ``train``; quality is measured against ``heldout``, which neither has seen.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from genfast.errors import BackendUnavailableError


@dataclass(frozen=True)
class DigitsSplit:
    """Images (n, 1, size, size) in [-1, 1] and their labels (n,), for each side of the split."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    heldout_images: torch.Tensor
    heldout_labels: torch.Tensor


def load_digits_split(size: int = 16, heldout_fraction: float = 0.2, seed: int = 0) -> DigitsSplit:
    """The digits at ``size`` pixels, split per class so every digit is in both halves."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:
        raise BackendUnavailableError("scikit-learn is needed for the digits data.",
                                      "pip install 'genfast[image]'") from e
    bunch = load_digits()
    images = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0  # (n, 1, 8, 8) in [0, 1]
    images = torch.nn.functional.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    images = images.clamp(0, 1) * 2 - 1
    labels = torch.tensor(bunch.target, dtype=torch.long)
    gen = torch.Generator().manual_seed(seed)
    heldout = torch.zeros(len(labels), dtype=torch.bool)
    for digit in range(10):
        idx = (labels == digit).nonzero().squeeze(1)
        idx = idx[torch.randperm(len(idx), generator=gen)]
        heldout[idx[: round(len(idx) * heldout_fraction)]] = True
    return DigitsSplit(images[~heldout], labels[~heldout], images[heldout], labels[heldout])
