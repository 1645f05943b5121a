"""From measured trials to the answer: the winner, its margins with CIs, the Pareto front, diagnoses."""

from __future__ import annotations

import statistics

from genfast.tuning import select

SCHEMA = "genfast.tune/1"


def _final_values(final: dict | None, key: str, metric: str) -> list[float]:
    # a rate or time that is not positive is no measurement (ratios and their logs need both sides > 0)
    return [m[metric] for m in (final or {}).get("rounds", {}).get(key, []) if (m.get(metric) or 0) > 0]


def _is_plain_torch(record: dict) -> bool:
    r = record["recipe"]
    return not record["baseline"] and r["backend"] == "torch" and r["precision"] == "fp32" and not r["steps"] \
        and not r.get("threads")


def build_report(search, screened: list, final: dict | None, left_out: list[dict], not_tried: list[str],
                 base_record: dict) -> dict:
    """The JSON report of a search (schema ``genfast.tune/1``); ``winner`` is None when nothing fits."""
    from genfast.profiling.hardware import hardware_facts

    metric, higher = search.metric, search.higher
    opts = search.options
    records = [dict(r) for _, r in screened]
    simplicity = {r["key"]: c.simplicity for c, r in screened}

    def value(record: dict) -> float | None:
        values = _final_values(final, record["key"], metric)
        return statistics.median(values) if values else search.value(record)

    reference = next((r for r in records if _is_plain_torch(r) and r["status"] == "timed"), None)
    ref_value = search.value(reference) if reference else None
    for r in records:
        r["value"] = value(r)
        r["final_rounds"] = _final_values(final, r["key"], metric)
        mine = search.value(r)
        r["speedup_vs_reference"] = (None if not (ref_value and mine) else
                                     (mine / ref_value if higher else ref_value / mine))
    for r in records:
        r["diagnosis"] = select.diagnosis(r, reference, decode_bound=opts.objective == "latency")

    in_budget = [r for r in records if r["status"] == "timed" and not r["baseline"] and r["value"] is not None]
    finalists = [r for r in in_budget if r["final_rounds"]] or in_budget
    finalists.sort(key=lambda r: -r["value"] if higher else r["value"])
    winner = runner_up = vs_runner = vs_generate = None
    base_rounds = _final_values(final, base_record["key"], metric)
    if finalists:
        winner = finalists[0]
        runner_up = finalists[1] if len(finalists) > 1 else None
        if runner_up and winner["final_rounds"] and runner_up["final_rounds"]:
            vs_runner = select.paired_speedup(winner["final_rounds"], runner_up["final_rounds"], higher)
            if vs_runner["tie"] and simplicity[runner_up["key"]] < simplicity[winner["key"]]:
                winner, runner_up = runner_up, winner  # within the noise: the simpler one
                vs_runner = select.paired_speedup(winner["final_rounds"], runner_up["final_rounds"], higher)
                vs_runner["simpler_kept"] = True
        winner["diagnosis"] = None  # the answer needs no excuse
        if winner["final_rounds"] and base_rounds:
            vs_generate = select.paired_speedup(winner["final_rounds"], base_rounds, higher)
        elif base_record.get("screen") and search.value(base_record) and winner["value"]:
            b = search.value(base_record)
            vs_generate = {"ratio": winner["value"] / b if higher else b / winner["value"], "ci95": None,
                           "rounds": 0, "tie": None}

    rejected = [r for r in records if r["status"] == "rejected"]
    over_budget = min(rejected, key=lambda r: r["build"]["weight_bytes_per_step"] if r.get("build") else 1e30,
                      default=None)
    points = [(r["key"], r["value"], 0.0 if r["baseline"] else r["quality"]["ppl_increase"]["value"])
              for r in records if r["status"] == "timed" and r["value"] is not None]
    return {
        "schema": SCHEMA,
        "source": search.source,
        "objective": {"name": opts.objective, "metric": metric, "higher_is_better": higher,
                      "concurrency": opts.concurrency if opts.objective == "throughput" else None},
        "workload": {"prompt_len": opts.workload.prompt_lens[0], "new_tokens": opts.workload.output_len,
                     "screen_repeats": opts.workload.repeats, "rounds": len(winner["final_rounds"]) if winner else 0,
                     "round_repeats": opts.round_repeats},
        "budget": {k: v for k, v in vars(opts.budget).items() if k != "version"},
        "hardware": hardware_facts(),
        "time": {"budget_s": opts.time_budget_s, "used_s": None, "reused_trials": search.reused,
                 "final_skipped": (final or {}).get("skipped")},
        "winner": None if winner is None else {
            "key": winner["key"], "label": winner["label"], "recipe": winner["recipe"], "value": winner["value"],
            "quality": winner["quality"], "screen": winner["screen"],
            "vs_generate": vs_generate,
            "beats_generate": None if not vs_generate else (
                vs_generate["ratio"] > 1 if vs_generate["ci95"] is None else vs_generate["ci95"][1] > 1),
            "generate_value": statistics.median(base_rounds) if base_rounds else search.value(base_record),
            "runner_up": None if runner_up is None else {"label": runner_up["label"], "value": runner_up["value"],
                                                          "comparison": vs_runner}},
        "over_budget": None if over_budget is None else {
            "label": over_budget["label"], "failures": over_budget["failures"],
            "weight_bytes_per_step": over_budget["build"]["weight_bytes_per_step"] if over_budget["build"] else None,
            "note": "outside the budget, so never timed; of those, the one reading the fewest bytes per step"},
        "pareto": select.pareto_front(points, higher),
        "left_out": left_out,
        "not_tried": not_tried,
        "trials": records,
    }
