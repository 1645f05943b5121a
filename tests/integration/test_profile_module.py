import pytest
import torch

from genfast.errors import ConfigError
from genfast.models.handle import ModuleSpec
from genfast.profiling.module import profile_module


def _spec():
    gen = torch.nn.Sequential(torch.nn.Linear(16, 64), torch.nn.ReLU(), torch.nn.Linear(64, 3 * 8 * 8))
    return ModuleSpec(module=gen, raw_input=7, name="toy-image-generator",
                      preprocess=lambda seed: torch.randn(1, 16, generator=torch.Generator().manual_seed(seed)),
                      postprocess=lambda y: (y.view(3, 8, 8).clamp(-1, 1) * 127.5 + 127.5).to(torch.uint8))


def test_generic_module_stages():
    result = profile_module(_spec(), warmup=1, repeats=4)
    assert set(result["stages_s"]) == {"preprocess", "forward", "postprocess"}
    assert result["e2e_s"]["n"] == 4
    assert result["model"]["parameters"] == 16 * 64 + 64 + 64 * 192 + 192
    total = sum(s["median"] for s in result["stages_s"].values())
    assert total <= result["e2e_s"]["max"] * 1.05


def test_bad_repeats():
    with pytest.raises(ConfigError):
        profile_module(_spec(), repeats=0)
