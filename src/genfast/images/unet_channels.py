"""The inner channels of a UNet's ResNet blocks (between ``conv1`` and ``conv2``, normalised by
``norm2``): which blocks there are, and keeping a subset of their GroupNorm groups."""

from __future__ import annotations

import torch

from genfast.errors import ConfigError


def resnet_blocks(unet: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    from diffusers.models.resnet import ResnetBlock2D

    return [(name, m) for name, m in unet.named_modules() if isinstance(m, ResnetBlock2D)]


def keep_groups(block, groups: torch.Tensor) -> None:
    """Keep the inner channels of GroupNorm ``groups`` (sorted indices) of ``block``."""
    width = block.conv1.out_channels
    size = width // block.norm2.num_groups
    channels = (groups[:, None] * size + torch.arange(size)).flatten()
    conv1, conv2, norm2 = block.conv1, block.conv2, block.norm2
    conv1.weight = torch.nn.Parameter(conv1.weight.data[channels].clone())
    if conv1.bias is not None:
        conv1.bias = torch.nn.Parameter(conv1.bias.data[channels].clone())
    conv1.out_channels = len(channels)
    conv2.weight = torch.nn.Parameter(conv2.weight.data[:, channels].clone())
    conv2.in_channels = len(channels)
    norm2.weight = torch.nn.Parameter(norm2.weight.data[channels].clone())
    norm2.bias = torch.nn.Parameter(norm2.bias.data[channels].clone())
    norm2.num_groups, norm2.num_channels = len(groups), len(channels)
    proj = block.time_emb_proj
    if proj is not None:
        rows = torch.cat([channels, channels + width]) if block.time_embedding_norm == "scale_shift" else channels
        proj.weight = torch.nn.Parameter(proj.weight.data[rows].clone())
        if proj.bias is not None:
            proj.bias = torch.nn.Parameter(proj.bias.data[rows].clone())
        proj.out_features = len(rows)


def shrink(unet: torch.nn.Module, kept_groups: dict[str, int]) -> None:
    """Give ``unet``'s blocks the pruned shapes of ``kept_groups`` (their weights are loaded after)."""
    blocks = dict(resnet_blocks(unet))
    unknown = [name for name in kept_groups if name not in blocks]
    if unknown:
        raise ConfigError(f"recipe.json prunes a block the UNet does not have: {unknown[0]}.",
                          "The recipe belongs to another model; re-create the artifact.")
    for name, count in kept_groups.items():
        keep_groups(blocks[name], torch.arange(count))
