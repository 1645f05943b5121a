import pytest
import torch

from genfast.errors import ConfigError
from genfast.profiling.workload import Workload, prompt_windows


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(prompt_lens=[0]), "prompt length must be at least 1"),
        (dict(prompt_lens=[-4]), "prompt length must be at least 1"),
        (dict(output_len=0), "output length must be at least 1"),
        (dict(batch_sizes=[0]), "batch size must be at least 1"),
        (dict(repeats=0), "Repeats must be at least 1"),
        (dict(warmup=-1), "Warm-up runs cannot be negative"),
        (dict(prompt_lens=[200], output_len=100), "exceeds the model's context of 256"),
    ],
)
def test_invalid_workloads_are_rejected(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        Workload(**kwargs).validate(context_length=256)


def test_prompt_windows_are_seeded_and_exact():
    ids = list(range(1000))
    a = prompt_windows(ids, 32, 4, seed=1)
    assert a.shape == (4, 32)
    assert torch.equal(a, prompt_windows(ids, 32, 4, seed=1))
    assert not torch.equal(a, prompt_windows(ids, 32, 4, seed=2))
    # windows are consecutive tokens of the source
    assert all((row[1:] - row[:-1] == 1).all() for row in a)


def test_short_text_is_repeated():
    assert prompt_windows([5, 6, 7], 10, 2, seed=0).shape == (2, 10)
