"""The report of `genfast tune`: report.json, report.md (every trial in one table) and pareto.png."""

from __future__ import annotations

import json
from pathlib import Path

from genfast.report.markdown import markdown_table


def format_value(value: float | None, metric: str) -> str:
    """A metric for people: milliseconds for times, tokens/s for rates."""
    if value is None:
        return "-"
    return f"{value:.1f} tok/s" if metric.endswith("per_s") else f"{value * 1e3:.2f} ms"


def _ci(est: dict | None, pct: bool = True) -> str:
    if not est:
        return "-"
    lo, hi = est["ci95"]
    return (f"{est['value']:+.2%} ({lo:+.2%}..{hi:+.2%})" if pct
            else f"{est['value']:.3f} ({lo:.3f}..{hi:.3f})")


def answer_line(report: dict) -> str:
    """The search's answer in one line: the winner, its speed against generate(), its quality change."""
    w, metric = report["winner"], report["objective"]["metric"]
    if w is None:
        return "No candidate ran inside the quality budget; see the report for what broke it."
    speed = ""
    if w["vs_generate"]:
        g = w["vs_generate"]
        ci = f" (95% CI {g['ci95'][0]:.2f}-{g['ci95'][1]:.2f}x)" if g["ci95"] else " (screening runs only)"
        speed = f" {g['ratio']:.2f}x transformers' generate(){ci},"
    tie = (w["runner_up"] or {}).get("comparison") or {}
    note = ""
    if tie.get("tie"):
        kept = ", the simpler one kept" if tie.get("simpler_kept") else ""
        note = f" (a tie with {w['runner_up']['label']}{kept})"
    change = w["quality"]["ppl_increase"]["value"] if w["quality"] else 0.0
    if w.get("beats_generate") is False:
        return (f"Nothing beat transformers' generate() here: the best candidate, {w['label']}, ran at{speed} "
                f"so keep the original (was the machine busy? rerun on a quiet one).")
    return (f"Winner: {w['label']}{note}: {format_value(w['value'], metric)} {report['objective']['name']},{speed} "
            f"perplexity {change:+.2%}.")


def trial_rows(report: dict) -> list[list[str]]:
    metric = report["objective"]["metric"]
    rows = []
    for r in sorted(report["trials"], key=lambda r: (r["status"] != "timed", r["value"] is None,
                                                     (-(r["value"] or 0)) if report["objective"]["higher_is_better"]
                                                     else (r["value"] or 0))):
        q, s, b = r.get("quality") or {}, r.get("screen") or {}, r.get("build") or {}
        status = r["status"] + (f": {'; '.join(r['failures'])}" if r["failures"] else "")
        rows.append([
            r["label"] + (" **(winner)**" if report["winner"] and r["key"] == report["winner"]["key"] else ""),
            status if r["status"] != "failed" else f"failed: {r['error']}",
            _ci(q.get("ppl_increase")) if q else ("0 (the reference)" if r["baseline"] else "-"),
            f"{q['kl']['value']:.4f}" if q else "-",
            f"{q['top1_agreement']['value']:.3f}" if q else "-",
            format_value(r["value"], metric) + (f" ({len(r['final_rounds'])} rounds)" if r["final_rounds"] else ""),
            f"{s['ttft_s'] * 1e3:.1f}" if s.get("ttft_s") else "-",
            f"{s['tpot_s'] * 1e3:.2f}" if s.get("tpot_s") else "-",
            f"{s['roofline_fraction']:.0%}" if s.get("roofline_fraction") else "-",
            f"{s['peak_rss_bytes'] / 2**20:.0f}" if s.get("peak_rss_bytes") else "-",
            f"{b['weight_bytes_per_step'] / 1e6:.1f}" if b.get("weight_bytes_per_step") else "-",
            r["diagnosis"] or "",
        ])
    return rows


HEADERS = ["candidate", "status", "perplexity change (95% CI)", "KL", "top-1", "objective (final rounds, else screen)",
           "screen TTFT ms", "screen TPOT ms", "screen roofline", "peak RSS MiB", "weights MB/step", "diagnosis"]


def pareto_plot(report: dict, path: Path) -> Path:
    """Speed vs perplexity change: every timed trial a point, rejected ones as ticks, the budget a line."""
    from genfast.report.plots import pyplot, save_figure

    plt = pyplot()
    metric = report["objective"]["metric"]
    scale = 1 if metric.endswith("per_s") else 1e3
    fig, ax = plt.subplots(figsize=(7, 4.5))
    front = set(report["pareto"])
    timed = [r for r in report["trials"] if r["status"] == "timed" and r["value"] is not None]
    for r in timed:
        x = 0.0 if r["baseline"] else r["quality"]["ppl_increase"]["value"] * 100
        on_front = r["key"] in front
        ax.scatter(x, r["value"] * scale, s=40 if on_front else 18, color="#2a7ab9" if on_front else "#999999",
                   zorder=3)
        if on_front or r["baseline"]:
            ax.annotate(r["label"], (x, r["value"] * scale), fontsize=6, xytext=(4, 2), textcoords="offset points")
    rejected = [r["quality"]["ppl_increase"]["value"] * 100 for r in report["trials"]
                if r["status"] == "rejected" and r.get("quality")]
    if rejected:
        ax.plot(rejected, [0] * len(rejected), "x", color="#c0392b", label="outside the budget (not timed)",
                clip_on=False)
    w = report["winner"]
    if w:
        x = w["quality"]["ppl_increase"]["value"] * 100 if w["quality"] else 0.0
        ax.scatter(x, w["value"] * scale, s=160, facecolors="none", edgecolors="#e67e22", linewidths=2,
                   label="winner", zorder=4)
    limit = report["budget"].get("max_ppl_increase")
    if limit is not None:
        ax.axvline(limit * 100, color="#c0392b", linestyle="--", label=f"budget: +{limit:.1%} perplexity")
    ax.set_xlabel("perplexity change vs the original (%)")
    ax.set_ylabel("output tokens/s" if scale == 1 else f"{metric.removesuffix('_s')} (ms)")
    ax.set_ylim(bottom=0)
    ax.set_title(f"genfast tune: {report['source']} ({report['objective']['name']}; Pareto front in blue)")
    ax.legend(fontsize=7)
    return save_figure(fig, path)


def write_tune_report(report: dict, directory: Path) -> Path:
    """``report.json``, ``report.md`` and ``pareto.png`` in ``directory``; returns report.md's path."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "report.json").write_text(json.dumps(report, indent=2))
    pareto_plot(report, directory / "pareto.png")
    hw, t, wl = report["hardware"], report["time"], report["workload"]
    w = report["winner"]
    parts = [
        f"# genfast tune: {report['source']}",
        f"**{answer_line(report)}**",
        f"Objective: {report['objective']['name']} ({report['objective']['metric']}); prompt {wl['prompt_len']} "
        f"tokens, {wl['new_tokens']} new tokens, greedy. Budget: "
        + ", ".join(f"{k} {v}" for k, v in report["budget"].items() if v is not None)
        + f". Machine: {hw['cpu']}, {hw['logical_cores']} logical cores. Time: {t['used_s'] or 0:.0f} s of "
          f"{t['budget_s']:.0f} s; {t['reused_trials']} trials reused from an earlier run.",
        "Every candidate was first checked against the original on held-out text; those outside the budget "
        f"were never timed. The rest got a short profile ({wl['screen_repeats']} runs); the best few and "
        f"transformers' generate() then ran in {wl['rounds']} interleaved rounds of {wl['round_repeats']} runs, "
        "each in its own process.",
    ]
    if w and w["runner_up"] and w["runner_up"]["comparison"]:
        c = w["runner_up"]["comparison"]
        verdict = "."
        if c["tie"]:
            verdict = (": **a tie** within the noise, so the simpler candidate is the answer." if c.get("simpler_kept")
                       else ": **a tie** within the noise.")
        parts.append(f"Speed against the runner-up ({w['runner_up']['label']}): {c['ratio']:.3f}x (95% CI "
                     f"{c['ci95'][0]:.3f}-{c['ci95'][1]:.3f}, paired over {c['rounds']} rounds; above 1: the "
                     f"answer is faster){verdict}")
    if report["over_budget"]:
        o = report["over_budget"]
        parts.append(f"Outside the budget: {o['label']} ({'; '.join(o['failures'])}); {o['note']}.")
    if t["final_skipped"]:
        parts.append(f"No final rounds: {t['final_skipped']}; the answer rests on the screening runs.")
    parts += ["## Every trial", markdown_table(HEADERS, trial_rows(report)), "![pareto](pareto.png)"]
    if report["left_out"]:
        parts.append("## Left out of the search\n" + "\n".join(f"- {x['axis']}: {x['reason']}"
                                                               for x in report["left_out"]))
    if report["not_tried"]:
        parts.append("## Not tried (time budget)\n" + "\n".join(f"- {x}" for x in report["not_tried"]))
    if w:
        parts.append(f"## The artifact\n`{w.get('artifact')}`: `genfast serve --model {w.get('artifact')}`, "
                     f"`genfast profile --model {w.get('artifact')}`.")
    path = directory / "report.md"
    path.write_text("\n\n".join(parts) + "\n")
    return path
