"""`genfast tune`: the fastest way to run a model on this machine, inside a quality budget.

1. Screen: every candidate of the space, cheapest first, each in its own worker process: quality
   against the original first (outside the budget: recorded as rejected, never timed), then a
   short profile.
2. Variants: the leaders again with other thread counts (and, for throughput, other max_running).
3. Final: the best few and transformers' ``generate()`` in interleaved rounds, each built once in
   its own process, so the machine's noisy phases hit all of them alike; the winner is compared
   with the runner-up as a paired ratio with a CI, and a tie goes to the simpler candidate.
4. The winner is written as a servable artifact, with the report.

Every measurement is appended to ``trials.jsonl`` as it finishes; rerunning the same command
resumes from it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from genfast.compress.recipe import Recipe
from genfast.errors import ConfigError, Interrupted, Terminated
from genfast.output_dir import check_output_dir, make_output_dir
from genfast.profiling.workload import Workload
from genfast.quality.budget import QualityBudget
from genfast.quality.compare import QualitySettings
from genfast.tuning.outcome import SCHEMA, build_report
from genfast.tuning.records import TrialLog, context_of, trial_key
from genfast.tuning.space import Candidate, SpaceOptions, build_space, thread_counts, variants
from genfast.tuning.trial import objective_metric
from genfast.tuning.worker import TrialFailed, Worker, spec_of

TRIALS = "trials.jsonl"


@dataclass
class TuneOptions:
    """What to optimise for, on which workload, inside which budget, in how much time."""

    objective: str = "latency"
    """latency (batch-1 time per output token), ttft (time to first token) or throughput (output
    tokens/s of the serving engine with ``concurrency`` streams)."""
    workload: Workload = field(default_factory=lambda: Workload(prompt_lens=[128], output_len=64, repeats=2))
    """Screening profile: its first prompt length, its output length, warm-up and repeats."""
    concurrency: int = 8
    """throughput: requests in flight together."""
    budget: QualityBudget = field(default_factory=QualityBudget)
    quality: QualitySettings = field(default_factory=QualitySettings)
    space: SpaceOptions = field(default_factory=SpaceOptions)
    time_budget_s: float = 480.0
    """The search stops when this is spent and reports the best so far and what it did not try."""
    finalists: int = 3
    """Candidates that go to the interleaved final rounds (beside the generate() baseline)."""
    rounds: int = 5
    """Final rounds (fewer when the time budget is short; with time for fewer than 2, none)."""
    round_repeats: int = 3
    """Counted runs of each finalist per round."""
    leaders: int = 2
    """Leaders whose thread (and max_running) variants are screened too."""
    trial_timeout_s: float = 1200.0
    """A worker step that takes longer fails that trial."""
    version: int = 1

    def validate(self) -> None:
        objective_metric(self.objective)
        if self.objective == "latency" and self.workload.output_len < 2:
            raise ConfigError("The latency objective times decode steps; it needs --new-tokens >= 2.")
        for name in ("concurrency", "finalists", "rounds", "round_repeats"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}.")
        if self.time_budget_s <= 0:
            raise ConfigError(f"The time budget must be positive, got {self.time_budget_s} s.")
        if len(self.workload.prompt_lens) != 1 or self.workload.batch_sizes != [1]:
            raise ConfigError("tune measures one prompt length at batch 1 (throughput: --concurrency).",
                              "Give one --prompt-len.")
        self.space.validate()


class Search:
    """One search's state: its options, the records so far, the clock and the workers alive."""

    def __init__(self, source: str, out_dir: Path, options: TuneOptions, progress: Callable[[dict], None],
                 start: float | None = None) -> None:
        from genfast.tuning.prefix_cache import source_fingerprint

        self.source, self.out, self.options, self.progress = source, out_dir, options, progress
        self.metric, self.higher = objective_metric(options.objective)
        self.context = context_of(source_fingerprint(source), options)
        self.log = TrialLog(out_dir / TRIALS)
        self.records = self.log.load()
        if self.log.damaged:
            import warnings

            warnings.warn(f"{self.log.damaged} damaged lines of {self.log.path} were skipped; those trials "
                          "run again.", stacklevel=2)
        self.cache_dir = out_dir / ".cache"
        self.start = start or time.monotonic()
        self.spent: list[float] = []  # wall seconds of this run's trials, to judge whether one more fits
        self.workers: list[Worker] = []
        self.reused = 0

    # --- clock -----------------------------------------------------------------------------
    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def remaining(self) -> float:
        return self.options.time_budget_s - self.elapsed()

    def fits(self, keep: float) -> bool:
        """Whether one more trial (as long as this run's median so far) leaves ``keep`` seconds."""
        typical = statistics.median(self.spent) if self.spent else 0.0
        return self.remaining() - typical >= keep

    # --- one screening trial -------------------------------------------------------------------
    def key(self, candidate: Candidate) -> str:
        return trial_key(self.context, candidate)

    def _spawn(self, candidate: Candidate) -> Worker:
        spec = spec_of(candidate, self.source, self.options, self.cache_dir)
        worker = Worker(spec, timeout_s=self.options.trial_timeout_s)
        self.workers.append(worker)
        return worker

    def _release(self, worker: Worker) -> None:
        worker.close()
        self.workers.remove(worker)

    def screen(self, candidate: Candidate, index: int, total: int) -> dict:
        """Quality first, then a short profile; the record is appended to trials.jsonl."""
        key = self.key(candidate)
        old = self.records.get(key)
        if old and old["status"] in ("timed", "failed"):
            self.reused += 1
            return self._rescore(old)
        quality = (old or {}).get("quality")
        if candidate.parent and not quality:
            quality = self.records[candidate.parent]["quality"]
        failures = select_failures(self.options.budget, quality)
        if old and quality and failures:  # still outside the budget: nothing new to measure
            self.reused += 1
            return self._rescore(old)
        record = {"key": key, "label": candidate.label, "recipe": asdict(candidate.recipe),
                  "baseline": candidate.baseline, "parent": candidate.parent, "quality": quality,
                  "failures": failures, "screen": None, "build": None, "error": None}
        started = time.monotonic()
        worker = self._spawn(candidate)
        try:
            self._tell(index, total, candidate.label, "build")
            record["build"] = worker.call("build", spec=worker.spec)
            if quality is None and not candidate.baseline:
                self._tell(index, total, candidate.label, "quality")
                record["quality"] = worker.call("quality")
                record["failures"] = select_failures(self.options.budget, record["quality"])
            if record["failures"]:
                record["status"] = "rejected"
            else:
                self._tell(index, total, candidate.label, "timing")
                record["screen"] = worker.call("time", repeats=self.options.workload.repeats,
                                               warmup=self.options.workload.warmup)
                record["status"] = "timed"
        except TrialFailed as exc:
            record["status"], record["error"] = "failed", exc.message
        finally:
            self._release(worker)
        record["elapsed_s"] = time.monotonic() - started
        self.spent.append(record["elapsed_s"])
        self.log.append(record)
        self.records[key] = record
        return record

    def _rescore(self, record: dict) -> dict:
        """A recorded trial, its verdict re-checked against this run's budget."""
        if record["status"] in ("timed", "rejected") and record.get("quality"):
            record = {**record, "failures": select_failures(self.options.budget, record["quality"])}
            if record["failures"]:
                record["status"] = "rejected"
        return record

    def _tell(self, index: int, total: int, label: str, stage: str) -> None:
        self.progress({"phase": "screen", "index": index, "total": total, "label": label, "stage": stage,
                       "best": self.best_label()})

    def value(self, record: dict) -> float | None:
        return (record.get("screen") or {}).get(self.metric)

    def ranked(self, records: list[dict]) -> list[dict]:
        """Timed, in-budget records, best first."""
        timed = [r for r in records if r["status"] == "timed" and self.value(r) is not None]
        return sorted(timed, key=lambda r: -self.value(r) if self.higher else self.value(r))

    def best_label(self) -> str | None:
        ranked = self.ranked([r for r in self.records.values() if not r["baseline"]])
        return ranked[0]["label"] if ranked else None

    # --- final rounds -------------------------------------------------------------------------
    def final(self, finalists: list[tuple[Candidate, dict]]) -> dict:
        """Interleaved rounds over the finalists, each built once in its own process."""
        opts = self.options
        keys = [r["key"] for _, r in finalists]
        final_key = hashlib.sha256(json.dumps([keys, opts.rounds, opts.round_repeats]).encode()).hexdigest()[:16]
        old = self.records.get(final_key)
        if old:
            self.reused += 1
            return old
        per_round = sum((opts.round_repeats + 1) * (r["screen"] or {}).get("e2e_s", 1.0) for _, r in finalists)
        builds = sum((r["build"] or {}).get("build_s", 5.0) for _, r in finalists)
        artifact = max((r["build"] or {}).get("build_s", 5.0) for _, r in finalists)  # the winner, rebuilt
        affordable = int((self.remaining() - builds - artifact) / max(per_round, 1e-3))
        rounds = min(opts.rounds, affordable)
        if rounds < 2:
            return {"key": final_key, "stage": "final", "rounds": {}, "skipped": "the time budget ran out"}
        workers = {}
        try:
            for candidate, record in finalists:
                self.progress({"phase": "final", "stage": "build", "label": candidate.label, "index": 0,
                               "total": rounds})
                worker = self._spawn(candidate)
                try:
                    worker.call("build", spec=worker.spec)
                    workers[record["key"]] = worker
                except TrialFailed:
                    self._release(worker)
            values: dict[str, list[dict]] = {k: [] for k in workers}
            order = list(workers)
            for r in range(rounds):
                if r >= 2 and self.remaining() < artifact:  # slower than estimated: stop on time
                    break
                self.progress({"phase": "final", "stage": "round", "index": r + 1, "total": rounds, "label": None})
                for k in order[r % len(order):] + order[:r % len(order)]:  # rotate who goes first
                    time.sleep(0.2)  # let the previous process's spinning threads go idle
                    try:
                        values[k].append(workers[k].call("time", repeats=opts.round_repeats, warmup=1))
                    except TrialFailed:  # a finalist that breaks mid-way leaves the final, not the search
                        order.remove(k)
                        values.pop(k)
        finally:
            for worker in list(workers.values()):
                self._release(worker)
        record = {"key": final_key, "stage": "final", "rounds": values, "status": "final", "baseline": False}
        self.log.append(record)
        self.records[final_key] = record
        return record

    def close(self) -> None:
        for worker in list(self.workers):
            worker.kill()
        self.workers.clear()


def select_failures(budget: QualityBudget, quality: dict | None) -> list[str]:
    from genfast.tuning.trial import budget_failures

    return budget_failures(budget, quality) if quality else []


def check_tune_output(out_dir: Path, source: str) -> None:
    """Before any work: the output is ours (or new) and can be written."""
    from genfast.models.loading import resolve_model_path

    check_output_dir(out_dir, resolve_model_path(source), marker=TRIALS)


def tune(source: str = "demo", out_dir: str | Path = "tuned", options: TuneOptions | None = None,
         progress: Callable[[dict], None] = lambda _: None) -> dict:
    """Search the space for ``source`` and write ``out_dir/{best/, report.md, report.json, pareto.png,
    trials.jsonl}``; returns the report. Rerunning with the same arguments resumes."""
    from genfast.models.loading import load

    start = time.monotonic()
    options = options or TuneOptions()
    out = Path(out_dir)
    options.validate()
    check_tune_output(out, source)
    original = load(source, device=options.space.device)  # an absent device fails here, before any trial
    options.workload.validate(original.context_length)
    space = build_space(original.model, options.space)
    del original
    if not space.candidates:
        reasons = "; ".join(f"{x['axis']}: {x['reason']}" for x in space.left_out[:3])
        raise ConfigError(f"No candidate can run here ({reasons}).", "Widen --backend or install a backend extra.")
    make_output_dir(out)
    (out / TRIALS).touch()
    search = Search(source, out, options, progress, start)
    progress({"phase": "space", "candidates": len(space.candidates), "left_out": space.left_out})
    try:
        return _run(search, space)
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM through the CLI
        search.close()
        done = sum(1 for r in search.log.load().values() if r.get("status") != "final")
        what = "Terminated" if isinstance(exc, Terminated) else "Interrupted"
        raise Interrupted(f"{what}: {done} trials are kept in {out / TRIALS}.",
                          "Run the same command again to resume from them.",
                          terminated=isinstance(exc, Terminated)) from None
    finally:
        search.close()


def _run(search: Search, space) -> dict:
    from genfast.report.tune_report import write_tune_report

    opts = search.options
    reserve = 0.25 * opts.time_budget_s  # kept for the final rounds and the artifact
    baseline = Candidate(Recipe(), baseline=True)
    queue = [baseline, *space.candidates]
    screened: list[tuple[Candidate, dict]] = []
    not_tried: list[str] = []
    for i, candidate in enumerate(queue):
        if not search.fits(reserve) and not search.records.get(search.key(candidate)):
            not_tried += [c.label for c in queue[i:] if not search.records.get(search.key(c))]
            break
        screened.append((candidate, search.screen(candidate, i + 1, len(queue))))

    leaders = search.ranked([r for c, r in screened if not c.baseline])[:opts.leaders]
    threads = thread_counts(opts.space.threads)
    extra = [v for r in leaders for v in variants(_candidate(r), r["key"], opts.objective, threads, opts.concurrency)]
    for i, candidate in enumerate(extra):
        if not search.fits(reserve / 2) and not search.records.get(search.key(candidate)):
            not_tried += [c.label for c in extra[i:]]
            break
        screened.append((candidate, search.screen(candidate, len(queue) + i + 1, len(queue) + len(extra))))

    by_key = {r["key"]: (c, r) for c, r in screened}
    finalists = [by_key[r["key"]] for r in search.ranked([r for c, r in screened if not c.baseline])[:opts.finalists]]
    base_record = by_key[search.key(baseline)][1]
    final = search.final(finalists + [(baseline, base_record)]) if finalists else None
    report = build_report(search, screened, final, space.left_out, not_tried, base_record)
    winner = report["winner"]
    if winner:
        candidate = by_key[winner["key"]][0]
        search.progress({"phase": "artifact", "label": candidate.label})
        winner["artifact"] = str(_write_best(search, candidate, report))
    report["time"]["used_s"] = search.elapsed()
    write_tune_report(report, search.out)
    return report


def _candidate(record: dict) -> Candidate:
    return Candidate(Recipe(**record["recipe"]), baseline=record["baseline"], parent=record.get("parent"))


def _write_best(search: Search, candidate: Candidate, report: dict) -> Path:
    """The winner rebuilt in this process and saved as ``out/best`` (weights + recipe.json + report.json)."""
    from genfast.compress.api import recipe_of
    from genfast.models.loading import load
    from genfast.tuning.artifact import write_artifact
    from genfast.tuning.prefix_cache import load_candidate

    device = search.options.space.device
    original = load(search.source, device=device)
    handle = load_candidate(search.source, original, candidate.recipe, search.cache_dir, device=device)
    r = candidate.recipe
    applied = Recipe(steps=recipe_of(handle.model), backend=r.backend, precision=r.precision, threads=r.threads,
                     max_running=r.max_running if search.options.objective == "throughput" else None)
    if search.options.objective == "throughput" and applied.max_running is None:
        applied.max_running = search.options.concurrency
    best = search.out / "best"
    if best.exists() and (best / "recipe.json").is_file():
        shutil.rmtree(best)
    winner = {k: v for k, v in report["winner"].items() if k != "artifact"}
    write_artifact(handle, applied, {"schema": SCHEMA, "source": search.source, "winner": winner}, best)
    return best
