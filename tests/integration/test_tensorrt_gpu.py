"""TensorRT on an NVIDIA GPU: skipped cleanly where there is none (the CPU-side error is tested elsewhere)."""

import importlib.util

import pytest
import torch

from genfast.backends.registry import get_backend
from genfast.models.loading import from_model
from genfast.models.tiny import tiny_model
from genfast.runtime.generate import generate
from genfast.runtime.hf import HFRuntime

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available() or importlib.util.find_spec("tensorrt") is None,
                       reason="needs an NVIDIA GPU and the tensorrt package"),
]


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_fp32_engine_equals_the_torch_reference(tokenizer, arch):
    model, _ = tiny_model(arch, tokenizer)
    runtime = get_backend("tensorrt").build(from_model(model, tokenizer), batch=2, max_cache_len=64)
    ids = torch.randint(1, 400, (2, 12), generator=torch.Generator().manual_seed(0))
    ours = generate(runtime, ids, 32).cpu()
    assert torch.equal(ours, generate(HFRuntime(model), ids, 32))
