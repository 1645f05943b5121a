import asyncio

import torch

from genfast.runtime.sampling import SamplingParams
from genfast.runtime.torch_runtime import TorchRuntime
from genfast.serving.async_engine import AsyncEngine
from genfast.serving.engine_core import EngineCore
from genfast.serving.scheduler import SchedulerConfig


def _prompts(n):
    gen = torch.Generator().manual_seed(3)
    return [torch.randint(1, 400, (int(torch.randint(3, 20, (1,), generator=gen)),), generator=gen).tolist()
            for _ in range(n)]


def _run(core):
    while core.has_work:
        core.step()


def test_batched_output_equals_each_request_alone(tiny_llama):
    model, tok = tiny_llama
    params = SamplingParams(max_tokens=12, temperature=0, ignore_eos=True)
    prompts = _prompts(6)
    alone = []
    for p in prompts:
        core = EngineCore(TorchRuntime(model, max_cache_len=64), tok, SchedulerConfig(max_running=1))
        req = core.add(p, params)
        _run(core)
        alone.append(req.output_ids)
    core = EngineCore(TorchRuntime(model, max_cache_len=64), tok, SchedulerConfig(max_running=4))
    reqs = [core.add(p, params) for p in prompts[:3]]
    core.step()
    core.step()
    reqs += [core.add(p, params) for p in prompts[3:]]  # join a running batch mid-way
    _run(core)
    assert [r.output_ids for r in reqs] == alone


def test_async_engine_streams_and_cancels(tiny_gpt2):
    model, tok = tiny_gpt2

    async def scenario():
        engine = AsyncEngine(EngineCore(TorchRuntime(model, max_cache_len=64), tok, SchedulerConfig(max_running=4)))
        await engine.start()
        params = SamplingParams(max_tokens=10, temperature=0, ignore_eos=True)
        full = engine.submit([5, 6, 7], params)
        tokens = [e.token_id async for e in engine.stream(full)]
        cancelled = engine.submit([5, 6, 7], SamplingParams(max_tokens=40, temperature=0, ignore_eos=True))
        async for _ in engine.stream(cancelled):
            break  # the client goes away after one token
        await asyncio.sleep(0.2)
        await engine.stop(drain_timeout_s=5)
        return full, tokens, cancelled, engine

    full, tokens, cancelled, engine = asyncio.run(scenario())
    assert len(tokens) == 10 and full.finish_reason == "length"
    assert cancelled.finish_reason == "abort" and len(cancelled.output_ids) < 40
    assert not engine.core.running and not engine.core.waiting


def test_any_runtime_serves_through_per_request_caches(tiny_llama):
    """transformers' forward (no row cache) through the adapter equals genfast's batched rows."""
    from genfast.runtime.hf import HFRuntime
    from genfast.serving.row_adapter import RowAdapter

    model, tok = tiny_llama
    params = SamplingParams(max_tokens=10, temperature=0, ignore_eos=True)
    outputs = []
    for runtime in (TorchRuntime(model, max_cache_len=64), RowAdapter(HFRuntime(model), max_len=64)):
        core = EngineCore(runtime, tok, SchedulerConfig(max_running=3))
        reqs = [core.add(p, params) for p in _prompts(2)]
        core.step()
        reqs += [core.add(p, params) for p in _prompts(5)[2:]]  # joins mid-way, finished rows are refilled
        _run(core)
        outputs.append([r.output_ids for r in reqs])
    assert outputs[0] == outputs[1]


def test_server_builds_an_engine_for_onnxruntime(tiny_dirs):
    import pytest

    pytest.importorskip("onnxruntime")
    from genfast.serving.server import ServeConfig, build_engine_parts

    _, core = build_engine_parts(ServeConfig(model=str(tiny_dirs["gpt2"]), backend="onnxruntime",
                                                scheduler=SchedulerConfig(max_running=2)))
    reqs = [core.add([5, 6, 7], SamplingParams(max_tokens=6, temperature=0, ignore_eos=True)) for _ in range(3)]
    _run(core)
    assert all(len(r.output_ids) == 6 for r in reqs) and reqs[0].output_ids == reqs[2].output_ids
