"""Profile an image generator: where a batch of images spends its time, and images per second.

Stages: preprocess (labels and noise), every denoising step split into the UNet forward and the
scheduler step, postprocess (to uint8). Per batch size: end-to-end time per batch, images/s, the
median step and the UNet's share of it, and the process's peak memory.
"""

from __future__ import annotations

import time

import numpy as np

from genfast.errors import ConfigError
from genfast.images.model import ImageModelHandle
from genfast.images.runners import BuiltDenoiser
from genfast.images.sampling import SampleTimes, generate_images
from genfast.profiling import memory
from genfast.profiling.hardware import hardware_facts
from genfast.profiling.stats import summarize

SCHEMA = "genfast.profile-image/1"


def workload_labels(handle: ImageModelHandle, batch: int, seed: int) -> tuple[list[int], list[int]]:
    """Class labels (cycling through the classes) and per-image seeds of one batch."""
    labels = [i % handle.num_classes for i in range(batch)] if handle.num_classes else []
    return labels, [seed * 100_003 + i for i in range(batch)]


def profile_images(handle: ImageModelHandle, built: BuiltDenoiser, batch_sizes: list[int], steps: int,
                   sampler: str | None = None, warmup: int = 1, repeats: int = 3, seed: int = 0,
                   on_run=None) -> dict:
    """Time ``repeats`` batches (after ``warmup``) at each batch size; the dict ``genfast profile`` prints."""
    if repeats < 1 or warmup < 0 or not batch_sizes or min(batch_sizes) < 1:
        raise ConfigError(f"Need repeats >= 1, warmup >= 0 and batch sizes >= 1, got repeats={repeats}, "
                          f"warmup={warmup}, batch sizes={batch_sizes}.")
    shape = (handle.channels, handle.image_size, handle.image_size)
    cases = []
    for batch in batch_sizes:
        labels, seeds = workload_labels(handle, batch, seed)
        runs: list[tuple[SampleTimes, float]] = []
        for i in range(warmup + repeats):
            times = SampleTimes()
            start = time.perf_counter()
            generate_images(built.denoise, handle.scheduler, labels, seeds, steps, shape, sampler, times)
            e2e = time.perf_counter() - start
            if i >= warmup:
                runs.append((times, e2e))
            if on_run:
                on_run()
        e2e = summarize([e for _, e in runs])
        unet_steps = np.concatenate([t.unet_s for t, _ in runs])
        sched_steps = np.concatenate([t.scheduler_s for t, _ in runs])
        cases.append({
            "batch_size": batch,
            "e2e_s": e2e.to_dict(),
            "images_per_s": batch / e2e.median,
            "latency_per_image_s": e2e.median / batch,
            "stages_s": {
                "preprocess": summarize([t.preprocess_s for t, _ in runs]).to_dict(),
                "unet": summarize([sum(t.unet_s) for t, _ in runs]).to_dict(),
                "scheduler": summarize([sum(t.scheduler_s) for t, _ in runs]).to_dict(),
                "postprocess": summarize([t.postprocess_s for t, _ in runs]).to_dict(),
            },
            "step_s": {"unet": summarize(unet_steps).to_dict(), "scheduler": summarize(sched_steps).to_dict()},
            "unet_share": float(unet_steps.sum() / max(sum(t.total_s for t, _ in runs), 1e-12)),
            "step_samples_s": (runs[-1][0].unet_s, runs[-1][0].scheduler_s),
        })
    warnings = [f"batch {c['batch_size']}: end-to-end varied by {c['e2e_s']['cv']:.0%} (CV) between runs; "
                "the machine is noisy." for c in cases if c["e2e_s"]["n"] > 1 and c["e2e_s"]["cv"] > 0.1]
    return {
        "schema": SCHEMA,
        "model": {"source": handle.source, "architecture": type(handle.unet).__name__,
                  "parameters": memory.parameter_count(handle.unet), "weight_bytes": memory.weight_bytes(handle.unet),
                  "image_size": handle.image_size, "channels": handle.channels, "classes": handle.num_classes},
        "sampler": sampler or handle.sampler, "steps": steps, "engine": built.engine, "precision": built.precision,
        "hardware": hardware_facts(),
        "cases": cases,
        "memory": {"peak_rss_bytes": memory.peak_rss_bytes()},
        "warnings": warnings,
    }


def step_plot(result: dict, path) -> None:
    """PNG: UNet and scheduler time of every step of the last counted batch, per batch size."""
    from genfast.report.plots import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for case in result["cases"]:
        unet, sched = case["step_samples_s"]
        ax.plot([u * 1e3 for u in unet], label=f"UNet, batch {case['batch_size']}")
        ax.plot([s * 1e3 for s in sched], linestyle="--", label=f"scheduler, batch {case['batch_size']}")
    ax.set_xlabel("denoising step")
    ax.set_ylabel("ms")
    ax.set_yscale("log")
    ax.set_title(f"Step times: {result['model']['source']} ({result['sampler']}, {result['steps']} steps, "
                 f"{result['engine']} {result['precision']})")
    ax.legend(fontsize=7)
    save_figure(fig, path)
