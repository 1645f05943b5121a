"""A pre-allocated KV cache with one owner: the runtime that created it."""

from __future__ import annotations

import torch


class StaticKVCache:
    """Keys and values of every layer in fixed buffers, plus each row's filled length.

    Rows fill from position 0 contiguously, so position ``p`` of a row lives in slot ``p``.
    Lengths are kept on the host (a list) so no step needs a device round-trip to read them.
    """

    def __init__(self, k: list[torch.Tensor], v: list[torch.Tensor], max_len: int) -> None:
        # (layers) x (batch, kv_heads, max_len, head_dim)
        self.k, self.v, self.max_len = k, v, max_len
        batch = k[0].shape[0]
        self.lengths = [0] * batch
        # (batch, 1): the row index of every write, made once rather than per layer and step
        self.rows = torch.arange(batch, device=k[0].device)[:, None]

    @classmethod
    def allocate(cls, layers: int, batch: int, kv_heads: int, max_len: int, head_dim: int,
                 dtype: torch.dtype, device: torch.device) -> StaticKVCache:
        shape = (batch, kv_heads, max_len, head_dim)
        return cls([torch.zeros(shape, dtype=dtype, device=device) for _ in range(layers)],
                   [torch.zeros(shape, dtype=dtype, device=device) for _ in range(layers)], max_len)

    @property
    def batch(self) -> int:
        return len(self.lengths)

    def write(self, layer: int, positions: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
        """Store k, v (batch, kv_heads, T, head_dim) at ``positions`` (batch, T)."""
        rows = self.rows
        # Advanced indices around a slice go first: the target view is (batch, T, kv_heads, head_dim).
        # (mixed precision hands bf16/fp16 keys to an fp32 cache: stored in the cache's dtype)
        self.k[layer][rows, :, positions] = k.transpose(1, 2).to(self.k[layer].dtype)
        self.v[layer][rows, :, positions] = v.transpose(1, 2).to(self.v[layer].dtype)

    def view(self, start: int, stop: int) -> StaticKVCache:
        """Rows ``start:stop`` as a cache sharing this one's memory (lengths start at 0)."""
        return StaticKVCache([t[start:stop] for t in self.k], [t[start:stop] for t in self.v], self.max_len)

    def move_row(self, src: int, dst: int, length: int) -> None:
        """Copy the first ``length`` positions of row ``src`` into row ``dst``."""
        for t in self.k + self.v:
            t[dst, :, :length] = t[src, :, :length]

    def advance(self, n: int) -> None:
        self.lengths = [length + n for length in self.lengths]

    def bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.k + self.v)
