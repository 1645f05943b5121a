"""Load a class-conditional diffusion model: a diffusers UNet2D pipeline directory or ``demo-image``.

A directory qualifies when it holds ``unet/`` (a ``diffusers.UNet2DModel``) and ``scheduler/``
(any diffusers scheduler config), as ``DDPMPipeline.save_pretrained`` writes it. A ``classifier/``
beside them (genfast's digit classifier) is the judge of its samples; without one, quality is
measured in pixels only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from genfast import envs
from genfast.errors import BackendUnavailableError, ModelLoadError
from genfast.images.source import DEMO_IMAGE


@dataclass
class ImageModelHandle:
    """A denoising UNet with the scheduler it was trained under, and what judges its samples."""

    unet: torch.nn.Module
    scheduler: Any
    """The diffusers scheduler the model was trained with (its config is the base of every other sampler)."""
    source: str
    classifier: torch.nn.Module | None = None
    path: Path | None = None
    recipe: dict = field(default_factory=dict)
    """What was done to the model since loading (steps, sampler, compression, backend)."""

    @property
    def image_size(self) -> int:
        size = self.unet.config.sample_size
        return size if isinstance(size, int) else size[0]

    @property
    def channels(self) -> int:
        return self.unet.config.in_channels

    @property
    def num_classes(self) -> int | None:
        """Class labels the UNet is conditioned on (None: unconditional)."""
        return self.unet.config.num_class_embeds

    @property
    def steps(self) -> int:
        """Denoising steps of this model's sampler (the recipe's, else every training timestep)."""
        return int(self.recipe.get("steps", self.scheduler.config.num_train_timesteps))

    @property
    def sampler(self) -> str:
        from genfast.images.sampling import sampler_name

        return self.recipe.get("sampler") or sampler_name(self.scheduler)


def image_model_path(source: str, unfinished_ok: bool = False) -> Path:
    """The pipeline directory ``source`` names, checked (``unfinished_ok``: genfast is writing it)."""
    from genfast.output_dir import INCOMPLETE

    path = envs.demo_image_dir() if source == DEMO_IMAGE else Path(source).expanduser()
    if (path / INCOMPLETE).exists() and not unfinished_ok:
        raise ModelLoadError(f"{path} is a genfast output that was never finished (it holds {INCOMPLETE}).",
                             "Run the command that writes it again, or choose another directory.")
    if not (path / "unet" / "config.json").is_file() or not (path / "scheduler").is_dir():
        hint = ("Reinstall genfast, or rebuild it with `genfast train-demo --image`." if source == DEMO_IMAGE
                else "Point --model at a diffusers pipeline directory with unet/ and scheduler/.")
        raise ModelLoadError(f"No diffusion pipeline (unet/ and scheduler/) at {path}.", hint)
    return path


def _load_unet(directory: Path, kept_groups: dict | None):
    """The UNet of ``directory``; a pruned one (``kept_groups`` from its recipe) is rebuilt from its
    config, given the pruned shapes, then loaded (diffusers' config cannot say per-block widths)."""
    import diffusers

    if not kept_groups:
        return diffusers.UNet2DModel.from_pretrained(directory, low_cpu_mem_usage=False)
    from safetensors.torch import load_file

    from genfast.images.unet_channels import shrink

    unet = diffusers.UNet2DModel.from_config(diffusers.UNet2DModel.load_config(directory))
    shrink(unet, kept_groups)
    unet.load_state_dict(load_file(str(directory / "diffusion_pytorch_model.safetensors")))
    return unet


def load_image_model(source: str, unfinished_ok: bool = False) -> ImageModelHandle:
    """The UNet, scheduler and (if shipped) classifier of ``source``; errors are one line.
    ``unfinished_ok`` lets the command writing an artifact read it back before it is marked whole."""
    try:
        import diffusers
    except ImportError as e:
        raise BackendUnavailableError("Image generators need diffusers.", "pip install 'genfast[image]'") from e
    path = image_model_path(source, unfinished_ok)
    recipe = {}
    if (path / "recipe.json").is_file():
        try:
            recipe = json.loads((path / "recipe.json").read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ModelLoadError(f"{path / 'recipe.json'} is not valid JSON ({exc.msg}).",
                                 "Restore it from report.json, or re-create the artifact.") from None
    try:
        unet = _load_unet(path / "unet", recipe.get("kept_groups")).eval()
        scheduler_config = json.loads((path / "scheduler" / "scheduler_config.json").read_text(encoding="utf-8"))
        scheduler_cls = getattr(diffusers, scheduler_config.get("_class_name", "DDPMScheduler"))
        scheduler = scheduler_cls.from_config(scheduler_config)
    except (OSError, ValueError, AttributeError, RuntimeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"Could not load the diffusion pipeline at {path}: "
                             f"{str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}",
                             "Check that unet/ and scheduler/ were written by diffusers' save_pretrained.") from None
    classifier = None
    if (path / "classifier" / "config.json").is_file():
        from genfast.images.digit_classifier import DigitClassifier

        classifier = DigitClassifier.load(path / "classifier")
    return ImageModelHandle(unet=unet, scheduler=scheduler, source=source, classifier=classifier, path=path,
                            recipe=recipe)
