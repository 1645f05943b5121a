"""`genfast tune` against the best hand-picked configuration of benchmarks/runtimes.py, in one run.

    python benchmarks/tune.py [--models demo gpt2-small] [--budget 8m 20m] [--rounds 7]

For each model: `genfast tune --model M` runs with its default search (fresh output directory,
the wall time of the whole command recorded); then tune's pick and the fastest configuration of
the committed runtimes table for that model ("the hand pick") are each built once in their own
worker process and timed in alternating rounds (1 warm-up + 3 runs each per round, prompt 128,
64 new tokens, batch 1). The GPT-2-small shape has random weights: its quality figures mean
nothing, its speed is what it is. Writes benchmarks/results/tune.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _results import markdown_table, write_results  # noqa: E402
from runtimes import WORK, model_dir  # noqa: E402

from genfast.compress.recipe import QUANTIZE_KINDS, Recipe, parse_quantize  # noqa: E402
from genfast.tuning.search import TuneOptions  # noqa: E402
from genfast.tuning.select import paired_speedup  # noqa: E402
from genfast.tuning.space import Candidate  # noqa: E402
from genfast.tuning.worker import Worker, spec_of  # noqa: E402


def hand_pick(model: str) -> Recipe:
    """The fastest decode row of the committed runtimes table for ``model``."""
    rows = json.loads((Path(__file__).parent / "results" / "runtimes.json").read_text())
    best = max((r for r in rows if r["model"] == model and "error" not in r and r["backend"] != "hf-generate"),
               key=lambda r: r["decode_tokens_per_s"])
    if best["precision"] in QUANTIZE_KINDS:
        return Recipe(steps=[parse_quantize(best["precision"])], backend=best["backend"])
    return Recipe(backend=best["backend"], precision=best["precision"])


def head_to_head(source: str, out: Path, picks: dict[str, Recipe], rounds: int) -> dict[str, list[float]]:
    """Alternating rounds of time per output token, each pick built once in its own process."""
    options = TuneOptions()
    workers = {name: Worker(spec_of(Candidate(recipe), source, options, out / ".cache"), timeout_s=1800)
               for name, recipe in picks.items()}
    try:
        for w in workers.values():
            w.call("build", spec=w.spec)
        values: dict[str, list[float]] = {name: [] for name in workers}
        order = list(workers)
        for r in range(rounds):
            for name in order[r % 2:] + order[:r % 2]:
                time.sleep(0.2)
                values[name].append(workers[name].call("time", repeats=3, warmup=1)["tpot_s"])
        return values
    finally:
        for w in workers.values():
            w.close()


def run(model: str, budget: str, rounds: int) -> dict:
    source = model_dir(model)
    out = WORK / f"tune-{model}"
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "genfast.cli.main", "tune", "--model", source, "-o", str(out),
                           "--time-budget", budget], capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"tune failed on {model}: {proc.stderr.strip().splitlines()[-1]}")
    report = json.loads((out / "report.json").read_text())
    winner = report["winner"]
    picks = {"tune": Recipe(**winner["recipe"]), "hand": hand_pick(model)}
    values = head_to_head(source, out, picks, rounds)
    return {"model": model, "budget": budget, "tune_wall_s": wall, "answer": proc.stdout.strip().splitlines()[0],
            "winner": winner["label"], "winner_quality": winner["quality"], "vs_generate": winner["vs_generate"],
            "trials": len(report["trials"]), "not_tried": report["not_tried"],
            "rejected": {r["label"]: r["failures"] for r in report["trials"] if r["status"] == "rejected"},
            "runner_up": winner["runner_up"],
            "hand_pick": Candidate(picks["hand"]).label, "tpot_s": values,
            "tune_vs_hand": paired_speedup(values["tune"], values["hand"], higher_is_better=False)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", nargs="+", default=["demo", "gpt2-small"])
    parser.add_argument("--budget", nargs="+", default=["8m", "20m"], help="tune's --time-budget, per model")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    if len(args.budget) != len(args.models):
        parser.error("give one --budget per model")
    results = [run(m, b, args.rounds) for m, b in zip(args.models, args.budget, strict=True)]
    rows = []
    for r in results:
        c = r["tune_vs_hand"]
        q = r["winner_quality"]["ppl_increase"]["value"] if r["winner_quality"] else 0.0
        rows.append([r["model"], f"{r['winner']}", f"{q:+.2%}", f"{r['tune_wall_s'] / 60:.1f} min ({r['budget']})",
                     f"{r['vs_generate']['ratio']:.2f}x", r["hand_pick"],
                     f"{statistics.median(r['tpot_s']['tune']) * 1e3:.2f}",
                     f"{statistics.median(r['tpot_s']['hand']) * 1e3:.2f}",
                     f"{c['ratio']:.3f}x ({c['ci95'][0]:.3f}-{c['ci95'][1]:.3f})" + (" tie" if c["tie"] else "")])
    headers = ["model", "tune's pick", "perplexity change", "tune wall time (budget)", "vs generate()",
               "hand pick (runtimes.py)", "tune TPOT ms", "hand TPOT ms", "tune vs hand (95% CI)"]
    caption = (f"2-core machine, `python benchmarks/tune.py`; prompt 128, 64 new tokens, batch 1, greedy; tune and "
               f"hand pick alternated over {args.rounds} rounds (1 warm-up + 3 runs each), each in its own process; "
               f"ratio > 1: tune's pick is faster. gpt2-small has random weights (speed only).")
    write_results("tune", results, caption, markdown_table(headers, rows))


if __name__ == "__main__":
    main()
