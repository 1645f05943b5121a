"""Verify an image generator against its reference: same labels, same seeds, a quality budget."""

from __future__ import annotations

from pathlib import Path

import torch

from genfast.images.model import ImageModelHandle
from genfast.images.quality import ImageBudget, ImageQuality, measure
from genfast.images.runners import BuiltDenoiser, build_denoiser
from genfast.images.sampling import generate_images


def quality_set(handle: ImageModelHandle, count: int, seed: int = 0) -> tuple[list[int], list[int]]:
    """``count`` labels cycling through the classes (empty when unconditional) and their seeds."""
    labels = [i % handle.num_classes for i in range(count)] if handle.num_classes else []
    return labels, [10_000 * seed + i for i in range(count)]


def draw(handle: ImageModelHandle, built: BuiltDenoiser, labels: list[int], seeds: list[int],
         batch: int = 100) -> torch.Tensor:
    """uint8 images of ``labels`` / ``seeds`` with ``handle``'s own sampler and steps, in batches."""
    shape = (handle.channels, handle.image_size, handle.image_size)
    chunks = []
    for start in range(0, len(seeds), batch):
        chunk_labels = labels[start:start + batch] if labels else []
        chunks.append(generate_images(built.denoise, handle.scheduler, chunk_labels, seeds[start:start + batch],
                                      handle.steps, shape, handle.recipe.get("sampler")))
    return torch.cat(chunks)


def real_images(handle: ImageModelHandle) -> torch.Tensor | None:
    """The held-out digits at the model's size as uint8, when its classifier is the digits judge."""
    if handle.classifier is None:
        return None
    from genfast.images.digits import load_digits_split

    heldout = load_digits_split(handle.image_size).heldout_images
    return ((heldout + 1) * 127.5).round().to(torch.uint8)


def denoiser_of(handle: ImageModelHandle, threads: int | None = None) -> BuiltDenoiser:
    """The engine and precision ``handle``'s recipe names (PyTorch fp32 for a plain pipeline)."""
    engine = handle.recipe.get("engine", "torch")
    exported = handle.path if handle.path is not None and (handle.path / "unet.onnx").is_file() else None
    return build_denoiser(handle, engine, handle.recipe.get("precision", "fp32"), threads=threads,
                          export_dir=exported if engine != "torch" else None)


def compare_images(reference: ImageModelHandle, candidate: ImageModelHandle, count: int = 100,
                   budget: ImageBudget | None = None, threads: int | None = None,
                   reference_images: torch.Tensor | None = None) -> tuple[dict, torch.Tensor, torch.Tensor]:
    """Quality of ``candidate`` against ``reference`` over ``count`` images; (result dict, reference
    images, candidate images). ``reference_images`` reuses an earlier draw of the same set."""
    labels, seeds = quality_set(reference, count)
    if reference_images is None:
        reference_images = draw(reference, denoiser_of(reference, threads), labels, seeds)
    candidate_images = draw(candidate, denoiser_of(candidate, threads), labels, seeds)
    quality: ImageQuality = measure(reference_images, candidate_images, labels, reference.classifier,
                                    real_images(reference))
    budget = budget or ImageBudget()
    failures = budget.violations(quality)
    result = {"images": count, "reference": describe(reference), "candidate": describe(candidate),
              "quality": quality.as_dict(), "budget": {**budget.__dict__, "passed": not failures,
                                                       "failures": failures}}
    return result, reference_images, candidate_images


def describe(handle: ImageModelHandle) -> dict:
    return {"source": handle.source, "sampler": handle.sampler, "steps": handle.steps,
            "engine": handle.recipe.get("engine", "torch"), "precision": handle.recipe.get("precision", "fp32")}


def grid_png(rows: list[torch.Tensor], titles: list[str], path: Path, columns: int = 20) -> Path:
    """One PNG: each row of uint8 images (n, c, h, w) side by side, titled, nearest-neighbour scaled."""
    from genfast.report.plots import pyplot, save_figure

    plt = pyplot()
    fig, axes = plt.subplots(len(rows), 1, figsize=(columns * 0.5, 0.75 * len(rows) + 0.3), squeeze=False)
    for ax, images, title in zip(axes[:, 0], rows, titles, strict=True):
        strip = torch.cat(list(images[:columns].float().mean(1)), dim=1)  # (h, columns * w)
        ax.imshow(strip.numpy(), cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        ax.set_title(title, fontsize=8, loc="left")
        ax.axis("off")
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_figure(fig, path)
