"""Rows of the profile tables, shared by the terminal (rich) and Markdown renderers."""

from __future__ import annotations

from genfast.profiling.timer import STAGES

LATENCY_HEADERS = ["prompt", "batch", "TTFT ms", "TPOT ms", "ITL p90", "ITL p99",
                   "E2E ms", "E2E p99", "tok/s", "decode tok/s", "roofline", "CV"]
STAGE_HEADERS = ["prompt", "batch", *[f"{s} ms" for s in STAGES], "sum / E2E"]


def _ms(summary: dict | None, key: str = "median") -> str:
    return "-" if summary is None else f"{summary[key] * 1e3:.2f}"


def latency_rows(result: dict) -> list[list[str]]:
    rows = []
    for c in result["cases"]:
        roof = c["roofline"]
        rows.append([
            str(c["prompt_len"]), str(c["batch_size"]), _ms(c["ttft_s"]), _ms(c["tpot_s"]),
            _ms(c["itl_s"], "p90"), _ms(c["itl_s"], "p99"), _ms(c["e2e_s"]), _ms(c["e2e_s"], "p99"),
            f"{c['tokens_per_s']['median']:.1f}",
            "-" if c["decode_tokens_per_s"] is None else f"{c['decode_tokens_per_s']['median']:.1f}",
            "-" if roof is None else f"{roof['achieved_fraction']:.1%} of {roof['ceiling_decode_tokens_per_s']:.0f}",
            f"{c['e2e_s']['cv']:.1%}",
        ])
    return rows


def stage_rows(result: dict) -> list[list[str]]:
    return [[str(c["prompt_len"]), str(c["batch_size"]), *[_ms(c["stages_s"][s]) for s in STAGES],
             f"{c['stage_sum_fraction']:.1%}"] for c in result["cases"]]


def _peak_rss(cases: list[dict]) -> str:
    mib = 2**20
    load = max(c["memory"].get("peak_rss_load_bytes") or 0 for c in cases)
    runs = [c["memory"].get("peak_rss_run_bytes") for c in cases]
    if not load or None in runs:  # a result from before the split, or an OS that cannot restart the peak
        return f"peak RSS {max(c['memory']['peak_rss_bytes'] for c in cases) / mib:.0f} MiB"
    return f"peak RSS {load / mib:.0f} MiB after loading, {max(runs) / mib:.0f} MiB while generating"


def model_lines(result: dict) -> list[str]:
    m, hw = result["model"], result["hardware"]
    return [
        f"model: {m['source']} ({m['architecture']}), {m['parameters'] / 1e6:.2f}M parameters, "
        f"{m['weight_bytes'] / 1e6:.1f} MB of weights, {m['dtype']} on {m['device']}",
        f"backend: {result['runtime']['backend']}" + (
            f" (compiled in {result['runtime']['compile_time_s']:.1f} s, not counted in latency)"
            if result["runtime"]["compile_time_s"] else ""),
        f"machine: {hw['cpu']}, {hw['logical_cores']} logical cores, {hw['torch_threads']} torch threads, "
        f"ISA {' '.join(hw['isa']) or '-'}{', GPU ' + hw['gpu'] if 'gpu' in hw else ''}",
        f"measured memory read bandwidth: {hw['memory_read_bandwidth_gbs']:.1f} GB/s; " + _peak_rss(result["cases"]),
        "libraries: " + ", ".join(f"{k} {v}" for k, v in hw["libraries"].items()),
    ]
