"""The decode step compiled with ``torch.compile`` over static shapes."""

from __future__ import annotations

import types

import torch

from genfast.errors import ConfigError
from genfast.runtime.kv_cache import StaticKVCache
from genfast.runtime.torch_runtime import TorchRuntime


def _own_copy(method: types.MethodType) -> types.MethodType:
    """``method`` bound to the same object, over a new code object (a cache of its own in dynamo)."""
    fn = method.__func__
    code = fn.__code__.replace(co_name=f"{fn.__name__}_{id(method.__self__):x}")
    return types.MethodType(types.FunctionType(code, fn.__globals__, code.co_name, fn.__defaults__, fn.__closure__),
                            method.__self__)


CPU_OPTIONS = {"cpp_wrapper": True}
"""Inductor options on CPU: the graph's wrapper in C++ rather than Python (less per-step overhead,
``benchmarks/step_ablations.py``; compiling takes a few seconds more)."""


class CompiledTorchRuntime(TorchRuntime):
    """Like TorchRuntime, but the decode step sees the whole cache (kv_len = its size) so every
    step has the same shapes, and that step is compiled once per batch size: SDPA attends over
    the whole masked cache, genfast's CPU decode attention over each row's filled slots. Prefill
    stays eager: prompt lengths vary, and it runs once per request.
    """

    name = "torch-compile"

    def __init__(self, model: torch.nn.Module, max_cache_len: int | None = None, mode: str | None = None,
                 autocast: torch.dtype | None = None) -> None:
        super().__init__(model, max_cache_len, autocast)
        self.compile_time_s: float | None = None
        # The decoder's modules never change after this point, so dynamo need not re-check their
        # attributes before every step (measured: 0.44 -> 0.09 ms per step on GPT-2-small). That is
        # only safe if no other runtime can hit this step's compiled graphs: dynamo caches them on
        # the code object, so every runtime compiles its own copy of the step's code.
        # torch.compile takes a mode or options, not both: the mode becomes its options.
        try:
            options = dict(torch._inductor.list_mode_options(mode)) if mode else {}
        except RuntimeError as err:  # an unknown mode
            raise ConfigError(str(err)) from None
        options["guard_filter_fn"] = torch.compiler.skip_guard_on_all_nn_modules_unsafe
        if self.device.type == "cpu":
            options = {**CPU_OPTIONS, **options}
        self._step = torch.compile(_own_copy(self._static_step), dynamic=False, fullgraph=True, options=options)

    def _static_step(self, tokens: torch.Tensor, positions: torch.Tensor, cache: StaticKVCache) -> torch.Tensor:
        return self.decoder(tokens, positions, cache, kv_len=cache.max_len)

    def _decode_forward(self, tokens: torch.Tensor, positions: torch.Tensor, cache: StaticKVCache,
                        kv_len: int) -> torch.Tensor:
        return self._step(tokens, positions, cache)  # kv_len = the cache size: static shapes

    def warm_up(self, batch: int = 1) -> None:
        """Compile the decode step for ``batch`` rows (the first call compiles)."""
        ids = torch.zeros(batch, 2, dtype=torch.long, device=self.device)
        _, cache = self.prefill(ids)
        self.decode(torch.zeros(batch, dtype=torch.long, device=self.device), cache)
