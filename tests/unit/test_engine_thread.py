"""The server runs its model in one thread; its other threads never start an OpenMP team."""

import asyncio
import threading

import pytest
import torch

from genfast.runtime.sampling import SamplingParams
from genfast.serving import server as server_module
from genfast.serving.async_engine import AsyncEngine
from genfast.serving.engine_core import EngineCore
from genfast.serving.engine_thread import EngineThread, compute_single_threaded, single_threaded_helpers
from genfast.serving.scheduler import SchedulerConfig
from genfast.serving.server import ServeConfig, build_server
from tests.fakes import FakeRuntime, FakeTokenizer


@pytest.fixture()
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def threads_seen_in(fn) -> int:
    seen = []
    worker = threading.Thread(target=lambda: (fn(), seen.append(torch.get_num_threads())))
    worker.start()
    worker.join()
    return seen[0]


def test_single_threaded_compute_is_per_thread(two_threads):
    assert threads_seen_in(compute_single_threaded) == 1
    assert threads_seen_in(lambda: None) == 2  # a new thread still gets torch's setting
    assert torch.get_num_threads() == 2  # and so does this one


def test_helpers_of_the_event_loop_compute_single_threaded(two_threads):
    async def main():
        single_threaded_helpers(asyncio.get_running_loop())
        return torch.get_num_threads(), await asyncio.to_thread(torch.get_num_threads)

    in_loop, in_helper = threading_run(main)
    assert (in_loop, in_helper) == (1, 1)
    assert torch.get_num_threads() == 2


def threading_run(coroutine_fn):
    """Run an event loop in a thread of its own (the test's thread keeps its OpenMP setting)."""
    out = []
    worker = threading.Thread(target=lambda: out.append(asyncio.run(coroutine_fn())))
    worker.start()
    worker.join()
    return out[0]


class ThreadRecordingRuntime(FakeRuntime):
    def __init__(self) -> None:
        super().__init__()
        self.threads: set[str] = set()

    def decode(self, tokens, cache):
        self.threads.add(threading.current_thread().name)
        return super().decode(tokens, cache)


def test_the_model_loads_and_steps_in_one_thread(monkeypatch):
    runtime, loaded_in = ThreadRecordingRuntime(), []

    def fake_parts(cfg):
        loaded_in.append(threading.current_thread().name)
        return (type("Handle", (), {"tokenizer": FakeTokenizer()})(),
                EngineCore(runtime, FakeTokenizer(), SchedulerConfig(max_running=2)))

    monkeypatch.setattr(server_module, "build_engine_parts", fake_parts)
    api = build_server(ServeConfig(model="anything"), eager=True, warmup=False)

    async def generate():
        await api.engine.start()
        req = api.engine.submit([3, 4], SamplingParams(max_tokens=5, temperature=0, ignore_eos=True))
        events = [event async for event in api.engine.stream(req)]
        await api.engine.stop()
        return req, events

    req, events = threading_run(generate)
    assert req.output_ids == [5, 6, 7, 8, 9] and events[-1].finished
    assert loaded_in[0] != threading.current_thread().name
    assert runtime.threads == set(loaded_in)


def test_requests_submitted_while_stepping_join_the_next_step():
    core = EngineCore(FakeRuntime(), FakeTokenizer(), SchedulerConfig(max_running=4))
    engine = AsyncEngine(core, thread=EngineThread())

    async def two_requests():
        await engine.start()
        first = engine.submit([3], SamplingParams(max_tokens=30, temperature=0, ignore_eos=True))
        stream = engine.stream(first)
        await anext(stream)  # the engine is stepping now
        second = engine.submit([10], SamplingParams(max_tokens=3, temperature=0, ignore_eos=True))
        rest = [event async for event in engine.stream(second)]
        async for _ in stream:
            pass
        await engine.stop()
        return first, second, rest

    first, second, rest = threading_run(two_requests)
    assert second.output_ids == [11, 12, 13] and rest[-1].finished
    assert len(first.output_ids) == 30
