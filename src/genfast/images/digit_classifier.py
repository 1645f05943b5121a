"""The digit classifier shipped beside the image demo: the judge of its samples and the feature
extractor of the Fréchet distance (as Inception is for FID on natural images)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


class DigitClassifier(nn.Module):
    """A small CNN over (n, 1, size, size) images in [-1, 1]: ``features`` (n, width) -> 10 logits."""

    def __init__(self, width: int = 64) -> None:
        super().__init__()
        self.width = width
        self.body = nn.Sequential(
            nn.Conv2d(1, width // 4, 3, padding=1), nn.SiLU(),
            nn.Conv2d(width // 4, width // 2, 3, stride=2, padding=1), nn.SiLU(),
            nn.Conv2d(width // 2, width, 3, stride=2, padding=1), nn.SiLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.head = nn.Linear(width, 10)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Pooled last-layer activations: (n, width)."""
        return self.body(images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))

    def save(self, directory: Path) -> None:
        """Write the weights (safetensors) and their config to ``directory``."""
        from safetensors.torch import save_file

        directory.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(directory / WEIGHTS_NAME))
        (directory / CONFIG_NAME).write_text(json.dumps({"width": self.width}), encoding="utf-8")

    @classmethod
    def load(cls, directory: Path) -> DigitClassifier:
        """The classifier saved in ``directory`` by :meth:`save`, in eval mode."""
        from safetensors.torch import load_file

        config = json.loads((directory / CONFIG_NAME).read_text(encoding="utf-8"))
        model = cls(**config)
        model.load_state_dict(load_file(str(directory / WEIGHTS_NAME)))
        return model.eval()


def train_classifier(images: torch.Tensor, labels: torch.Tensor, steps: int = 1500, seed: int = 0,
                     batch_size: int = 128) -> DigitClassifier:
    """Fit a :class:`DigitClassifier` with shifted, noised copies (so it also judges imperfect samples)."""
    torch.manual_seed(seed)
    model = DigitClassifier()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(0, len(images), (batch_size,), generator=gen)
        x = images[idx]
        dx, dy = torch.randint(-1, 2, (2,), generator=gen).tolist()
        x = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
        x = x + 0.15 * torch.randn(x.shape, generator=gen)
        loss = nn.functional.cross_entropy(model(x.clamp(-1, 1)), labels[idx])
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sched.step()
    return model.eval()


@torch.no_grad()
def accuracy(model: DigitClassifier, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Share of ``images`` classified as their label."""
    return (model(images).argmax(-1) == labels).float().mean().item()
