"""The one thread that runs the model; every other thread of a server computes single-threaded.

torch's OpenMP runtime (libgomp) counts the worker threads of every thread that ever started a
parallel region. Once they outnumber the cores, every team stops spin-waiting at its barriers and
sleeps there instead. A server that loads its model in one thread and steps it in another has two
teams: on 2 cores, the demo model's decode step took 3.8 ms instead of 1.8 ms, and a single large
torch operation in the HTTP thread did the same. So the model is loaded, warmed up and stepped in
one thread, and the other threads (the event loop, tokenizing, encoding images) are held to one
OpenMP thread each, so they never start a team.
"""

from __future__ import annotations

import asyncio
import ctypes
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


class EngineThread:
    """A single worker thread: everything that runs the model runs here, one call at a time."""

    def __init__(self) -> None:
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="genfast-engine")

    def run(self, fn: Callable[..., T], *args) -> T:
        """``fn(*args)`` in the engine thread, waiting for its result."""
        return self.executor.submit(fn, *args).result()

    async def call(self, fn: Callable[..., T], *args) -> T:
        """``fn(*args)`` in the engine thread, awaited from an event loop."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    def shutdown(self) -> None:
        self.executor.shutdown(wait=False)


def compute_single_threaded() -> None:
    """Hold the calling thread's torch operations to one OpenMP thread (other threads keep theirs).

    torch's own setting is process-wide; OpenMP's is per thread, so it is set directly, after
    torch's per-thread initialisation (which would otherwise overwrite it on the first operation)."""
    import torch

    torch.get_num_threads()
    try:
        set_threads = ctypes.CDLL(None).omp_set_num_threads
    except (OSError, AttributeError):  # no OpenMP runtime loaded in this process (or not on Linux)
        return
    set_threads(1)


def single_threaded_helpers(loop: asyncio.AbstractEventLoop) -> None:
    """The event loop's thread and its default executor's threads (``asyncio.to_thread``) compute
    single-threaded: call from within ``loop``."""
    compute_single_threaded()
    loop.set_default_executor(ThreadPoolExecutor(thread_name_prefix="genfast-helper",
                                                 initializer=compute_single_threaded))
