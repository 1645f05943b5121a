"""Tiny random causal LMs (GPT-2, Llama, Qwen2, Qwen3, Phi-3 shapes) and an offline tokenizer, for tests.

They have the real architectures' code paths at a size that runs in milliseconds.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import torch

ARCHITECTURES = ("gpt2", "llama", "qwen2", "qwen3", "phi3")


def tiny_tokenizer(vocab_size: int = 512):
    """A byte-level BPE tokenizer trained in well under a second on this module's own source."""
    from genfast.models.demo.train import train_tokenizer

    text = inspect.getsource(inspect.getmodule(tiny_tokenizer)) + inspect.getsource(torch.nn.modules.linear)
    return train_tokenizer([text] * 2, vocab_size)


def tiny_config(arch: str, vocab_size: int, context: int = 256, hidden: int = 64, layers: int = 2):
    """A 2-layer, 64-wide config of ``arch`` (4 heads; 2 key/value heads where GQA exists)."""
    from transformers import GPT2Config, LlamaConfig, Phi3Config, Qwen2Config, Qwen3Config

    common = dict(vocab_size=vocab_size, bos_token_id=0, eos_token_id=0, pad_token_id=0)
    if arch == "gpt2":
        return GPT2Config(n_embd=hidden, n_layer=layers, n_head=4, n_positions=context, **common)
    shapes = dict(hidden_size=hidden, intermediate_size=hidden * 3, num_hidden_layers=layers,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=context, **common)
    if arch == "llama":
        return LlamaConfig(**shapes)
    if arch == "qwen2":
        return Qwen2Config(**shapes)
    if arch == "qwen3":
        return Qwen3Config(**shapes, head_dim=hidden // 4)
    if arch == "phi3":
        return Phi3Config(**shapes)
    raise ValueError(f"unknown tiny architecture {arch!r}; use one of {ARCHITECTURES}")


def tiny_model(arch: str, tokenizer=None, seed: int = 0, **shape) -> tuple[torch.nn.Module, object]:
    """A randomly initialised tiny causal LM of ``arch`` and its tokenizer."""
    from transformers import AutoModelForCausalLM

    tokenizer = tokenizer or tiny_tokenizer()
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(tiny_config(arch, len(tokenizer), **shape))
    return model.eval(), tokenizer


def save_tiny(arch: str, directory: Path, **shape) -> Path:
    """Save a tiny model, tokenizer and generation config as a Hugging Face directory."""
    from transformers import GenerationConfig

    model, tokenizer = tiny_model(arch, **shape)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    GenerationConfig.from_model_config(model.config).save_pretrained(directory)
    return directory
