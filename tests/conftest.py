"""Shared fixtures: tiny random models of real architectures, built offline in milliseconds."""

from __future__ import annotations

import pytest

from genfast.models.tiny import save_tiny, tiny_model, tiny_tokenizer


@pytest.fixture(scope="session")
def tokenizer():
    return tiny_tokenizer()


@pytest.fixture(scope="session", params=["gpt2", "llama", "qwen2"])
def arch(request) -> str:
    return request.param


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory) -> dict:
    """Saved Hugging Face directories of each tiny architecture."""
    root = tmp_path_factory.mktemp("tiny")
    return {a: save_tiny(a, root / a) for a in ("gpt2", "llama", "qwen2")}


@pytest.fixture()
def tiny_gpt2(tokenizer):
    return tiny_model("gpt2", tokenizer)


@pytest.fixture()
def tiny_llama(tokenizer):
    return tiny_model("llama", tokenizer)
