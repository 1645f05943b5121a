"""``genfast train-demo``: rebuild the bundled demo model from this machine's standard library."""

from __future__ import annotations

from pathlib import Path

import typer

from genfast.cli.common import console, set_threads


def train_demo(
    out: Path = typer.Option(Path("src/genfast/models/demo/weights"), help="Where to write the model."),
    work_dir: Path = typer.Option(Path(".genfast-work/demo"), help="Checkpoints and tokenized corpus (resumable)."),
    max_minutes: float = typer.Option(65.0, help="Training time budget."),
    max_steps: int = typer.Option(1600, help="Step budget."),
    seed: int = typer.Option(0),
    threads: int = typer.Option(2),
) -> None:
    """Train the demo code-completion model (about an hour on 2 cores); resumes if interrupted."""
    from genfast.models.demo.train import DemoTrainConfig, train

    set_threads(threads)
    cfg = DemoTrainConfig(out_dir=out, work_dir=work_dir, max_minutes=max_minutes, max_steps=max_steps,
                          seed=seed, threads=threads)
    train(cfg, log=lambda msg: console.print(msg, highlight=False))
