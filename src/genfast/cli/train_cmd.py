"""``genfast train-demo``: rebuild a bundled demo model (the code-completion LM, or ``--image``
the digit-drawing diffusion model) on this machine."""

from __future__ import annotations

from pathlib import Path

import typer

from genfast.cli.common import console, set_threads


def train_demo(
    image: bool = typer.Option(False, "--image", help="Train the image demo (digits diffusion) instead."),
    out: Path | None = typer.Option(None, help="Where to write the model (default: the bundled location)."),
    work_dir: Path | None = typer.Option(None, help="Checkpoints (resumable; default .genfast-work/<demo>)."),
    max_minutes: float | None = typer.Option(None, help="Training time budget (default 65; 50 with --image)."),
    max_steps: int | None = typer.Option(None, help="Step budget (default 1600; 8000 with --image)."),
    seed: int = typer.Option(0),
    threads: int = typer.Option(2),
) -> None:
    """Train a demo model (about an hour on 2 cores); resumes if interrupted."""
    if image:
        from genfast.models.demo_image.train import ImageDemoTrainConfig as Config
        from genfast.models.demo_image.train import train
    else:
        from genfast.models.demo.train import DemoTrainConfig as Config
        from genfast.models.demo.train import train

    set_threads(threads)
    given = {"out_dir": out, "work_dir": work_dir, "max_minutes": max_minutes, "max_steps": max_steps}
    cfg = Config(seed=seed, threads=threads, **{k: v for k, v in given.items() if v is not None})
    train(cfg, log=lambda msg: console.print(msg, highlight=False))
