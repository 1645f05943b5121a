"""Each trial in its own process: thread settings, peak memory and compiled caches never leak between trials.

The search talks to a worker over JSON lines: ``build`` (apply the recipe, build the runtime),
``quality`` (compare with the original), ``time`` (one timed round), ``exit``. A worker lives as
long as its candidate is measured, so the final rounds interleave candidates without rebuilding them.
Run as ``python -m genfast.tuning.worker``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import warnings
from dataclasses import asdict
from pathlib import Path

from genfast.errors import GenfastError


class TrialFailed(GenfastError):
    """A trial's worker reported an error or died; the search records it and goes on."""


class Session:
    """The worker side: one candidate, built once, measured on request."""

    def __init__(self, spec: dict) -> None:
        self.spec = spec
        self.handle = self.runtime = self.original = None

    def build(self) -> dict:
        import torch

        from genfast.compress.recipe import Recipe
        from genfast.models.loading import load
        from genfast.profiling import memory
        from genfast.profiling.workload import Workload
        from genfast.quality.compare import QualitySettings
        from genfast.tuning import trial
        from genfast.tuning.prefix_cache import load_candidate

        spec = self.spec
        recipe = Recipe(**spec["recipe"])
        if recipe.threads:
            torch.set_num_threads(recipe.threads)
        workload = Workload(**spec["workload"])
        start = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            self.original = load(spec["source"], device=spec["device"])
            if spec["baseline"]:
                self.handle = self.original
            else:
                self.handle = load_candidate(spec["source"], self.original, recipe, Path(spec["cache_dir"]),
                                             device=spec["device"])
                settings = QualitySettings(**spec["quality_settings"])
                batch = spec["max_running"] if spec["objective"] == "throughput" else 1
                self.runtime = trial.build(self.handle, recipe,
                                           trial.cache_len(self.handle.context_length, workload, settings), batch,
                                           export_cache=Path(spec["cache_dir"]) / "exports")
        build_s = time.perf_counter() - start
        messages = sorted({str(w.message).splitlines()[0][:300] for w in caught
                           if issubclass(w.category, UserWarning)})
        rt = self.runtime
        return {"build_s": build_s, "compile_time_s": getattr(rt, "compile_time_s", None),
                "runtime": getattr(rt, "name", "transformers-generate"), "warnings": messages,
                "parameters": memory.parameter_count(self.handle.model),
                "weight_bytes_per_step": (trial.weight_bytes_per_step(self.handle, rt) if rt else
                                          memory.weight_bytes_read_per_step(self.handle.model))}

    def quality(self) -> dict:
        from genfast.quality.budget import QualityBudget
        from genfast.quality.compare import QualitySettings
        from genfast.tuning import trial

        q = trial.measure_quality(self.original, self.runtime, QualitySettings(**self.spec["quality_settings"]),
                                  QualityBudget(**self.spec["budget"]))
        return trial.quality_figures(q)

    def time(self, repeats: int, warmup: int) -> dict:
        from genfast.profiling.workload import Workload
        from genfast.tuning import trial

        if not self.spec["baseline"]:
            self.original = None  # quality is measured: the reference copy is done with
        workload = Workload(**{**self.spec["workload"], "repeats": repeats, "warmup": warmup})
        if self.spec["baseline"]:  # throughput: generate() over the concurrent prompts as one batch
            if self.spec["objective"] == "throughput":
                workload.batch_sizes = [self.spec["concurrency"]]
            return trial.time_generate(self.handle, workload)
        if self.spec["objective"] == "throughput":
            return trial.time_engine(self.handle, self.runtime, workload, self.spec["concurrency"],
                                     self.spec["max_running"])
        return trial.time_decode(self.handle, self.runtime, workload)


def main() -> None:
    """The worker loop: one JSON request per stdin line, one JSON reply per line on the real stdout."""
    reply_to = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything a library prints goes to stderr, never into the protocol
    sys.stdout = sys.stderr
    from genfast.cli.common import quiet_libraries

    quiet_libraries()
    session = None
    for line in sys.stdin:
        msg = json.loads(line)
        try:
            if msg["cmd"] == "exit":
                break
            if msg["cmd"] == "build":
                session = Session(msg["spec"])
                out = session.build()
            elif msg["cmd"] == "quality":
                out = session.quality()
            else:
                out = session.time(msg["repeats"], msg["warmup"])
            reply = {"ok": True, "result": out}
        except Exception as exc:  # noqa: BLE001 - any failure is this trial's result, reported to the search
            text = exc.message if isinstance(exc, GenfastError) else f"{type(exc).__name__}: {exc}"
            reply = {"ok": False, "error": text.strip().splitlines()[0][:500] if text.strip() else type(exc).__name__}
        reply_to.write(json.dumps(reply) + "\n")


class Worker:
    """The search's side: a worker process for one candidate."""

    def __init__(self, spec: dict, timeout_s: float) -> None:
        self.spec, self.timeout_s = spec, timeout_s
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen([sys.executable, "-m", "genfast.tuning.worker"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        self._stderr = _drain(self.proc.stderr)

    def call(self, cmd: str, **args) -> dict:
        """Send one request and wait (at most ``timeout_s``) for its reply; TrialFailed otherwise."""
        import select

        try:
            self.proc.stdin.write(json.dumps({"cmd": cmd, **args}) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            raise TrialFailed(self._died()) from None
        ready, _, _ = select.select([self.proc.stdout], [], [], self.timeout_s)
        if not ready:
            self.kill()
            raise TrialFailed(f"{cmd} took longer than {self.timeout_s:.0f} s")
        line = self.proc.stdout.readline()
        if not line:
            raise TrialFailed(self._died())
        reply = json.loads(line)
        if not reply["ok"]:
            raise TrialFailed(reply["error"])
        return reply["result"]

    def _died(self) -> str:
        self.proc.wait(timeout=10)
        tail = [line for line in self._stderr() if line.strip()]
        return f"the worker exited with code {self.proc.returncode}" + (f": {tail[-1].strip()[:300]}" if tail else "")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(json.dumps({"cmd": "exit"}) + "\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=10)
            except (BrokenPipeError, subprocess.TimeoutExpired, OSError):
                self.kill()


def _drain(stream):
    """Read a pipe in a thread (so a chatty worker never blocks on it); returns a getter of its lines."""
    import threading

    lines: list[str] = []

    def pump() -> None:
        for line in stream:
            lines.append(line)
            del lines[:-50]

    threading.Thread(target=pump, daemon=True).start()
    return lambda: list(lines)


def spec_of(candidate, source: str, options, cache_dir: Path) -> dict:
    """What a worker needs to rebuild ``candidate``: plain JSON."""
    return {"source": source, "recipe": asdict(candidate.recipe), "baseline": candidate.baseline,
            "workload": asdict(options.workload), "objective": options.objective,
            "concurrency": options.concurrency, "max_running": candidate.recipe.max_running or options.concurrency,
            "quality_settings": asdict(options.quality), "budget": asdict(options.budget),
            "cache_dir": str(cache_dir), "device": options.space.device}


if __name__ == "__main__":
    main()
