import pytest
import torch

from genfast.runtime.healing import heal, healing_sampler


def test_trailing_space_is_healed(tokenizer):
    ids, allowed = heal(tokenizer, "def ")
    full = tokenizer("def ")["input_ids"]
    assert ids == full[:-1]
    strings = [tokenizer.decode([i]) for i in range(len(tokenizer))]
    tail = tokenizer.decode(full[-1:])
    assert all(strings[i].startswith(tail) for i in allowed.nonzero().flatten().tolist())
    assert allowed.sum() > 1  # the lone space and longer tokens that start with it


def test_single_token_prompt_is_left_alone(tokenizer):
    ids, allowed = heal(tokenizer, "d")
    assert allowed is None and ids == tokenizer("d")["input_ids"]


def test_only_the_first_step_is_constrained():
    allowed = torch.tensor([False, False, True, False])
    step = healing_sampler(allowed)
    logits = torch.tensor([[5.0, 4.0, 1.0, 0.0]])
    assert step(logits).tolist() == [2]
    assert step(logits).tolist() == [0]


@pytest.mark.parametrize("text", [" ", "def", " s", "\n", "x", "日", "zzzz"])
def test_tokens_starting_with_equals_a_scan_of_the_vocabulary(tokenizer, text):
    import torch

    from genfast.runtime.healing import token_strings, tokens_starting_with

    expected = torch.tensor([s.startswith(text) for s in token_strings(tokenizer)])
    assert torch.equal(tokens_starting_with(tokenizer, text), expected)
