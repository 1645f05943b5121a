"""Structured pruning of a UNet's ResNet blocks, healed by distillation from the original.

Inside each ``ResnetBlock2D`` the channels between ``conv1`` and ``conv2`` (normalised by
``norm2``) are free: the block's input and output widths stay, so nothing else changes — the
UNet's counterpart of a transformer's FFN channels. Channels go in whole GroupNorm groups, so the
statistics of the groups kept are exactly what they were. A group's importance is the mean
activation entering ``conv2`` times the norm of the ``conv2`` weights reading it, on inputs the
UNet really meets: points of the original's own sampling trajectories (no dataset needed).

diffusers' config cannot express per-block widths, so a pruned UNet is saved with the original
config and the kept groups in ``recipe.json``; ``unet_channels.shrink`` rebuilds those shapes on load.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable

import torch

from genfast.errors import ConfigError
from genfast.images.model import ImageModelHandle
from genfast.images.sampling import scheduler_with_steps
from genfast.images.unet_channels import keep_groups, resnet_blocks


@torch.no_grad()
def trajectory_inputs(handle: ImageModelHandle, count: int, steps: int = 25, batch: int = 32,
                      seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]:
    """(x_t, t, labels) batches met along the original's own DDIM trajectories from random noise."""
    gen = torch.Generator().manual_seed(seed)
    shape = (handle.channels, handle.image_size, handle.image_size)
    inputs = []
    while sum(len(x) for x, _, _ in inputs) < count:
        scheduler = scheduler_with_steps(handle.scheduler, "ddim", steps)
        labels = torch.randint(0, handle.num_classes, (batch,), generator=gen) if handle.num_classes else None
        x = torch.randn((batch, *shape), generator=gen)
        for t in scheduler.timesteps:
            ts = t.expand(batch)
            inputs.append((x, ts, labels))
            eps = handle.unet(x, ts, class_labels=labels).sample
            x = scheduler.step(eps, t, x).prev_sample
    return inputs


def prune_unet(handle: ImageModelHandle, fraction: float, calibration: list) -> tuple[torch.nn.Module, dict]:
    """A copy of the UNet with ``fraction`` of every ResNet block's inner groups removed; (unet, kept groups)."""
    if not 0 < fraction < 1:
        raise ConfigError(f"The channel prune fraction must be in (0, 1), got {fraction}.", "e.g. --prune channels=0.5")
    unet = copy.deepcopy(handle.unet).eval()
    blocks = resnet_blocks(unet)
    if not blocks:
        raise ConfigError(f"{type(unet).__name__} has no ResnetBlock2D to prune.")
    activity: dict[str, torch.Tensor] = {}
    hooks = [block.conv2.register_forward_hook(
        lambda m, inp, out, name=name: activity.__setitem__(
            name, activity.get(name, 0) + inp[0].abs().mean((0, 2, 3)))) for name, block in blocks]
    try:
        with torch.no_grad():
            for x, t, labels in calibration:
                unet(x, t, class_labels=labels)
    finally:
        for h in hooks:
            h.remove()
    kept = {}
    for name, block in blocks:
        groups = block.norm2.num_groups
        keep_n = groups - int(round(fraction * groups))
        if keep_n < 1:
            raise ConfigError(f"Pruning {fraction:.0%} leaves no channels in {name}.", "Use a smaller fraction.")
        reads = block.conv2.weight.detach().pow(2).sum((0, 2, 3)).sqrt()  # per input channel
        score = (activity[name] * reads).view(groups, -1).sum(1)
        keep_groups(block, score.topk(keep_n).indices.sort().values)
        kept[name] = keep_n
    return unet, kept


def distill_unet(student: torch.nn.Module, teacher: torch.nn.Module, inputs: list, steps: int, lr: float = 3e-4,
                 max_minutes: float = 5.0, log: Callable[[str], None] = lambda _: None) -> list[float]:
    """Train ``student`` to predict what ``teacher`` predicts on ``inputs`` (MSE); returns the losses."""
    student.train()
    opt = torch.optim.AdamW(student.parameters(), lr=lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(0)
    losses, start = [], time.monotonic()
    for step in range(steps):
        x, t, labels = inputs[int(torch.randint(0, len(inputs), (1,), generator=gen))]
        with torch.no_grad():
            target = teacher(x, t, class_labels=labels).sample
        loss = torch.nn.functional.mse_loss(student(x, t, class_labels=labels).sample, target)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if (step + 1) % 50 == 0:
            log(f"distillation step {step + 1}/{steps}: loss {sum(losses[-50:]) / 50:.5f}")
        if time.monotonic() - start > max_minutes * 60:
            log(f"distillation stopped at its {max_minutes:g}-minute cap after {step + 1} steps")
            break
    student.eval()
    return losses
