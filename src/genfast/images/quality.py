"""Image quality of a candidate generator against its reference, and the budget it must keep.

Both draw the same labels from the same seeds. Per image: PSNR and SSIM of the candidate's image
against the reference's, and whether the digit classifier gives both the same class. Over the
set: the Fréchet distance between the classifier's features of generated and held-out real
images (FID's recipe with genfast's own small classifier as the feature extractor), for both
models. Each figure carries a bootstrap 95 % interval over the images.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch

from genfast.errors import QualityBudgetError

PSNR_CAP_DB = 100.0
"""PSNR of identical images (infinite) is reported as this."""


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 images -> float in [-1, 1] (the classifier's and the UNet's range)."""
    return images.float() / 127.5 - 1


def psnr(reference: torch.Tensor, candidate: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB of uint8 images (n, c, h, w), capped at PSNR_CAP_DB."""
    mse = (reference.float() - candidate.float()).pow(2).flatten(1).mean(1)
    return (10 * torch.log10(255.0 ** 2 / mse.clamp_min(1e-10))).clamp(max=PSNR_CAP_DB)


def _gaussian_window(size: int = 7, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-x ** 2 / (2 * sigma ** 2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).float()[None, None]


def ssim(reference: torch.Tensor, candidate: torch.Tensor, window: int = 7) -> torch.Tensor:
    """Per-image SSIM of uint8 images (n, c, h, w): Gaussian 7x7 window (small images), the usual
    constants for an 8-bit range, averaged over valid positions and channels."""
    n, c = reference.shape[:2]
    a = reference.float().reshape(n * c, 1, *reference.shape[2:])
    b = candidate.float().reshape(n * c, 1, *candidate.shape[2:])
    w = _gaussian_window(min(window, a.shape[-1]))
    conv = lambda x: torch.nn.functional.conv2d(x, w)  # noqa: E731
    mu_a, mu_b = conv(a), conv(b)
    var_a = conv(a * a) - mu_a ** 2
    var_b = conv(b * b) - mu_b ** 2
    cov = conv(a * b) - mu_a * mu_b
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return s.flatten(1).mean(1).view(n, c).mean(1)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to feature sets (n, d) and (m, d)."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    # tr sqrt(A B) = sum of sqrt of the eigenvalues of sqrt(A) B sqrt(A) (symmetric, so eigh is stable)
    vals, vecs = np.linalg.eigh(cov_a)
    root_a = (vecs * np.sqrt(np.clip(vals, 0, None))) @ vecs.T
    cross = np.linalg.eigvalsh(root_a @ cov_b @ root_a)
    trace_root = np.sqrt(np.clip(cross, 0, None)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_root)


def bootstrap_interval(values: np.ndarray, resamples: int = 1000, seed: int = 0) -> tuple[float, float]:
    """95 % percentile interval of the mean of ``values`` under resampling with replacement."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(values), (resamples, len(values)))
    means = values[idx].mean(1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


@dataclass
class Estimate:
    value: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.value:.4g} [{self.low:.4g}, {self.high:.4g}]"


def _mean(values: torch.Tensor) -> Estimate:
    v = values.double().numpy()
    return Estimate(float(v.mean()), *bootstrap_interval(v))


@torch.no_grad()
def classifier_outputs(classifier: torch.nn.Module, images: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(predicted classes (n,), features (n, d)) of uint8 images."""
    x = to_unit(images)
    features = classifier.features(x)
    return classifier.head(features).argmax(-1).numpy(), features.double().numpy()


def fd_estimate(features: np.ndarray, real: np.ndarray, resamples: int = 200, seed: int = 0) -> Estimate:
    """Fréchet distance to ``real`` features, with a 95 % interval from a bootstrap over the generated
    images. Resampling with replacement duplicates images, which inflates the distance itself, so the
    bootstrap's spread is centred on the estimate rather than its percentiles taken as they are."""
    rng = np.random.default_rng(seed)
    draws = np.array([frechet_distance(features[rng.integers(0, len(features), len(features))], real)
                      for _ in range(resamples)])
    value, centre = frechet_distance(features, real), float(draws.mean())
    return Estimate(value, max(0.0, value - (centre - float(np.percentile(draws, 2.5)))),
                    value + float(np.percentile(draws, 97.5)) - centre)


@dataclass
class ImageQuality:
    """The candidate against the reference on the same labels and seeds."""

    images: int
    psnr_db: Estimate
    ssim: Estimate
    class_agreement: Estimate | None = None
    """Share of images the classifier gives the same class in both models' versions."""
    reference_label_accuracy: float | None = None
    """Share of the reference's images classified as the requested label."""
    candidate_label_accuracy: float | None = None
    reference_fd: Estimate | None = None
    candidate_fd: Estimate | None = None
    real_images: int | None = None

    @property
    def fd_increase(self) -> float | None:
        """Relative change of the Fréchet distance to real images (0.1 = 10 % further)."""
        if self.reference_fd is None or self.candidate_fd is None:
            return None
        return self.candidate_fd.value / max(self.reference_fd.value, 1e-12) - 1

    def as_dict(self) -> dict:
        d = asdict(self)
        d["fd_increase"] = self.fd_increase
        return d


def measure(reference: torch.Tensor, candidate: torch.Tensor, labels: list[int],
            classifier: torch.nn.Module | None = None, real_images: torch.Tensor | None = None) -> ImageQuality:
    """Quality of uint8 ``candidate`` images against ``reference`` (same labels and seeds, same order)."""
    q = ImageQuality(images=len(reference), psnr_db=_mean(psnr(reference, candidate)),
                     ssim=_mean(ssim(reference, candidate)))
    if classifier is None:
        return q
    ref_class, ref_feat = classifier_outputs(classifier, reference)
    cand_class, cand_feat = classifier_outputs(classifier, candidate)
    q.class_agreement = _mean(torch.tensor(ref_class == cand_class, dtype=torch.float64))
    if labels:
        q.reference_label_accuracy = float((ref_class == np.array(labels)).mean())
        q.candidate_label_accuracy = float((cand_class == np.array(labels)).mean())
    if real_images is not None:
        real = classifier.features(real_images).double().numpy() if real_images.dtype != torch.uint8 else \
            classifier_outputs(classifier, real_images)[1]
        q.reference_fd, q.candidate_fd = fd_estimate(ref_feat, real), fd_estimate(cand_feat, real)
        q.real_images = len(real_images)
    return q


@dataclass
class ImageBudget:
    """What a candidate image generator must keep; None skips a check."""

    min_class_agreement: float | None = 0.9
    max_fd_increase: float | None = 0.5
    """Relative: 0.5 allows the Fréchet distance to real images to grow by half. On the demo the
    distance is small (4.2) and its 95 % interval over 200 images spans about -50 % to +65 %, so a
    tighter default would fail candidates for noise."""
    min_psnr: float | None = None
    """dB against the reference's image; only meaningful when the sampler is unchanged."""

    def violations(self, q: ImageQuality) -> list[str]:
        """One line per broken limit (empty: inside the budget)."""
        out = []
        if self.min_class_agreement is not None and q.class_agreement is not None \
                and q.class_agreement.value < self.min_class_agreement:
            out.append(f"class agreement {q.class_agreement.value:.3f} < {self.min_class_agreement}")
        if self.max_fd_increase is not None and q.fd_increase is not None and q.fd_increase > self.max_fd_increase:
            out.append(f"Fréchet distance +{q.fd_increase:.1%} > +{self.max_fd_increase:.0%}")
        if self.min_psnr is not None and q.psnr_db.value < self.min_psnr:
            out.append(f"PSNR {q.psnr_db.value:.1f} dB < {self.min_psnr} dB")
        return out


def parse_fraction(text: str | None, name: str) -> float | None:
    """``25%`` or ``0.25`` -> 0.25; None stays None."""
    if text is None:
        return None
    try:
        value = float(text[:-1]) / 100 if text.strip().endswith("%") else float(text)
    except ValueError:
        raise QualityBudgetError(f"Cannot read {name} {text!r}.", f"Use e.g. {name} 25% or 0.25.") from None
    if math.isnan(value) or value < 0:
        raise QualityBudgetError(f"{name} must be a non-negative number, got {text!r}.")
    return value
