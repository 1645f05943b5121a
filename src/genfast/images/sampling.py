"""The denoising loop: noise -> ``steps`` x (UNet forward + scheduler step) -> uint8 images.

Each image's noise comes from its own seed (one generator per image, for the start and for every
stochastic step), so an image is the same whether it is drawn alone or in any batch. The loop
times its stages when asked: preprocessing (labels and noise), each step's UNet forward and
scheduler step apart, and postprocessing (to uint8).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from genfast.errors import ConfigError

SAMPLERS = {
    "ddpm": "DDPMScheduler",
    "ddim": "DDIMScheduler",
    "dpm-solver": "DPMSolverMultistepScheduler",
}
"""genfast's sampler names -> diffusers scheduler classes (built from the model's own schedule)."""

Denoiser = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]
"""(noisy images (n, c, h, w), timesteps (n,), class labels (n,) or None) -> predicted noise."""


def scheduler_for(base, sampler: str | None = None):
    """A fresh scheduler (they keep state between steps) of ``sampler`` over ``base``'s noise schedule."""
    import diffusers

    if sampler is None:
        return type(base).from_config(base.config)
    if sampler not in SAMPLERS:
        raise ConfigError(f"Unknown sampler {sampler!r}.", f"Use one of: {', '.join(SAMPLERS)}.")
    return getattr(diffusers, SAMPLERS[sampler]).from_config(base.config)


def scheduler_with_steps(base, sampler: str | None, steps: int):
    """:func:`scheduler_for` with its ``steps`` timesteps set."""
    scheduler = scheduler_for(base, sampler)
    if steps > scheduler.config.num_train_timesteps:
        raise ConfigError(f"{steps} steps exceed the {scheduler.config.num_train_timesteps} the model was "
                          "trained with.", f"Use at most {scheduler.config.num_train_timesteps}.")
    with warnings.catch_warnings():  # diffusers' DPM-Solver calls np.array(tensor, copy=False), deprecated by numpy
        warnings.simplefilter("ignore", DeprecationWarning)
        scheduler.set_timesteps(steps)
    return scheduler


def sampler_name(scheduler) -> str:
    """genfast's name of a scheduler instance (its class name when genfast has none)."""
    names = {cls: name for name, cls in SAMPLERS.items()}
    return names.get(type(scheduler).__name__, type(scheduler).__name__)


@dataclass
class SampleTimes:
    """Seconds spent in each stage of one batch."""

    preprocess_s: float = 0.0
    unet_s: list[float] = field(default_factory=list)
    scheduler_s: list[float] = field(default_factory=list)
    postprocess_s: float = 0.0

    @property
    def total_s(self) -> float:
        return self.preprocess_s + sum(self.unet_s) + sum(self.scheduler_s) + self.postprocess_s


def torch_denoiser(unet: torch.nn.Module, dtype: torch.dtype | None = None) -> Denoiser:
    """The UNet itself as a denoiser (under autocast to ``dtype`` when given)."""

    @torch.inference_mode()
    def denoise(x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            return unet(x, t, class_labels=labels).sample.float()

    return denoise


def check_labels(labels: list[int], num_classes: int | None) -> None:
    if num_classes is None:
        return
    bad = [label for label in labels if not 0 <= label < num_classes]
    if bad:
        raise ConfigError(f"Class label {bad[0]} is outside the model's {num_classes} classes.",
                          f"Use labels 0..{num_classes - 1}.")


def generate_images(denoise: Denoiser, base_scheduler, labels: list[int], seeds: list[int], steps: int,
                    shape: tuple[int, int, int], sampler: str | None = None,
                    times: SampleTimes | None = None) -> torch.Tensor:
    """Images (n, channels, h, w) as uint8 for class ``labels`` (empty list: unconditional) and
    per-image ``seeds``; ``times`` (when given) receives each stage's seconds."""
    if steps < 1:
        raise ConfigError(f"steps must be at least 1, got {steps}.")
    clock = time.perf_counter
    t0 = clock()
    scheduler = scheduler_with_steps(base_scheduler, sampler, steps)
    generators = [torch.Generator().manual_seed(int(s)) for s in seeds]
    x = torch.stack([torch.randn(shape, generator=g) for g in generators]) * scheduler.init_noise_sigma
    class_labels = torch.tensor(labels, dtype=torch.long) if labels else None
    n = len(seeds)
    if times is not None:
        times.preprocess_s += clock() - t0
    for t in scheduler.timesteps:
        t1 = clock()
        eps = denoise(scheduler.scale_model_input(x, t), t.expand(n), class_labels)
        t2 = clock()
        x = scheduler.step(eps, t, x, generator=generators).prev_sample
        if times is not None:
            times.unet_s.append(t2 - t1)
            times.scheduler_s.append(clock() - t2)
    t3 = clock()
    images = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    if times is not None:
        times.postprocess_s += clock() - t3
    return images
