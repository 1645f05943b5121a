"""`genfast serve` beside `transformers serve` and llama.cpp's `llama-server`: one model, one load.

    bash benchmarks/peers/setup.sh            # once: builds llama-server (and the converter's venv)
    python benchmarks/peers/serving.py        # genfast's venv; --rounds, --concurrency, --requests

The demo model in fp32 (llama.cpp: its F32 GGUF from llama.cpp's own converter) is served by each
server in its own process with 2 threads and up to 16 requests batched, and driven by genfast's load
generator (`genfast bench`): 64-token prompts cut from the same text, 64 new tokens, greedy, EOS
ignored, at 1, 4 and 16 streams. Every server is started once per round; rounds are interleaved and
rotate which server goes first. Beside them, `genfast profile`'s TPOT of the same model, measured in
the same rounds: what one stream over HTTP could reach. Never run in CI.
Writes benchmarks/results/peers_serving.{json,md}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]
from _results import markdown_table, write_results  # noqa: E402
from run import LLAMA_BIN, PEERS, readable_by_transformers4, spread  # noqa: E402

from genfast.bench.loadgen import LoadConfig, PromptSource  # noqa: E402
from genfast.cli.bench_cmd import measure  # noqa: E402
from genfast.models.loading import load, resolve_model_path  # noqa: E402
from genfast.textdata import reference_text  # noqa: E402

DEMO = PEERS / "models" / "demo"
THREADS, MAX_RUNNING, PROMPT, NEW = 2, 16, 64, 64


def demo_models() -> tuple[Path, Path]:
    """The demo model as a Hugging Face directory the peers' transformers 4 reads, and its F32 GGUF."""
    hf, gguf = DEMO / "hf", DEMO / "gguf-f32.gguf"
    if not (hf / "config.json").exists():
        shutil.copytree(resolve_model_path("demo"), hf, dirs_exist_ok=True)
        readable_by_transformers4(hf)
    if not gguf.exists():
        subprocess.run([str(PEERS / "llama-convert/bin/python"), str(HERE / "llama_convert.py"),
                        str(PEERS / "llama.cpp/src"), str(hf), str(gguf)], check=True, capture_output=True)
    return hf, gguf


def servers(hf: Path, gguf: Path, port: int) -> dict[str, tuple[list[str], dict, str]]:
    """name -> (command, extra environment, the model name requests send). `transformers serve` rejects
    ``ignore_eos``, so its answers may end early at an end-of-text token: the table says how long they were."""
    threads_env = {"OMP_NUM_THREADS": str(THREADS)}
    return {
        "genfast serve": ([sys.executable, "-m", "genfast.cli.main", "serve", "--model", "demo", "--port", str(port),
                           "--threads", str(THREADS), "--max-running", str(MAX_RUNNING), "--max-queued", "256"],
                          {}, "demo"),
        "transformers serve --continuous-batching": (
            [str(PEERS / "transformers-serve/bin/transformers"), "serve", "--continuous-batching", "--port", str(port),
             "--dtype", "float32", "--log-level", "warning"], threads_env, str(hf)),
        "llama.cpp llama-server": (
            [str(LLAMA_BIN / "llama-server"), "-m", str(gguf), "--port", str(port), "-t", str(THREADS),
             "-tb", str(THREADS), "-np", str(MAX_RUNNING), "-c", str(MAX_RUNNING * (PROMPT + NEW) * 2)],
            {"LD_LIBRARY_PATH": str(LLAMA_BIN)}, "demo"),
    }


def start(command: list[str], env: dict, port: int) -> subprocess.Popen:
    """The server in its own process, returned once it answers /health (or /v1/models) with 200."""
    proc = subprocess.Popen(command, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{command[0]} exited with {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise RuntimeError(f"{command[0]} did not answer within 180 s")


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()


def profile_tpot_ms() -> float:
    """`genfast profile`'s median TPOT for the demo model at this workload (its own process)."""
    out = subprocess.run([sys.executable, "-m", "genfast.cli.main", "profile", "--model", "demo", "-p", str(PROMPT),
                          "-n", str(NEW), "--threads", str(THREADS), "--json"], check=True, capture_output=True,
                         text=True).stdout
    return json.loads(out)["cases"][0]["tpot_s"]["p50"] * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--requests", type=int, default=48, help="counted requests per load level")
    parser.add_argument("--servers", nargs="*", help="a subset of the server names (substring match)")
    parser.add_argument("--port", type=int, default=8311)
    args = parser.parse_args()

    hf, gguf = demo_models()
    chosen = {name: server for name, server in servers(hf, gguf, args.port).items()
              if not args.servers or any(part in name for part in args.servers)}
    prompts = PromptSource(reference_text(), load("demo").tokenizer)
    runs: list[dict] = []
    profiles: list[float] = []
    for rnd in range(args.rounds):
        profiles.append(profile_tpot_ms())
        names = list(chosen)
        names = names[rnd % len(names):] + names[:rnd % len(names)]
        for name in names:
            command, env, model = chosen[name]
            proc = start(command, env, args.port)
            try:
                for c in args.concurrency:
                    cfg = LoadConfig(url=f"http://127.0.0.1:{args.port}", model=model, concurrency=c,
                                     requests=args.requests, warmup_requests=4, prompt_tokens=PROMPT, max_tokens=NEW,
                                     ignore_eos=not name.startswith("transformers"))
                    r = asyncio.run(measure(replace(cfg), prompts))
                    runs.append({"server": name, "round": rnd, "concurrency": c, **r})
                    print(f"round {rnd + 1} {name} c={c}: {r['output_tokens_per_s']:.1f} tok/s, TPOT p50 "
                          f"{(r['tpot_s'] or {}).get('p50', float('nan')) * 1e3:.2f} ms", flush=True)
            finally:
                stop(proc)
    write(runs, profiles, args)


def write(runs: list[dict], profiles: list[float], args) -> None:
    rows = []
    for c in args.concurrency:
        for name in dict.fromkeys(r["server"] for r in runs):
            mine = [r for r in runs if r["server"] == name and r["concurrency"] == c]
            ok = [r for r in mine if r["tpot_s"]]
            if not ok:
                rows.append([str(c), name, "failed", "", "", "", ""])
                continue
            sent = sum(r["requests"]["sent"] for r in mine)
            good = sum(r["requests"]["ok"] for r in mine)
            out_per_request = statistics.median(r["output_tokens_per_s"] * r["wall_s"] / r["requests"]["ok"]
                                                for r in ok)
            rows.append([str(c), name, spread([r["output_tokens_per_s"] for r in ok], "{:.0f}"),
                         spread([r["ttft_s"]["p50"] * 1e3 for r in ok], "{:.0f}"),
                         spread([r["tpot_s"]["p50"] * 1e3 for r in ok], "{:.2f}"), f"{good}/{sent}",
                         f"{out_per_request:.0f}"])
    table = markdown_table(["streams", "server", "output tok/s", "TTFT p50 ms", "TPOT p50 ms", "ok/sent",
                            "tokens per answer"], rows)
    caption = (f"The demo model (fp32; llama.cpp: F32 GGUF), {PROMPT}-token prompts, {NEW} new tokens, greedy, EOS "
               f"ignored (not by `transformers serve`, which rejects the field), {args.requests} counted requests "
               f"per level after 4 warm-up ones, {THREADS} threads, at most "
               f"{MAX_RUNNING} requests batched, {platform.processor() or platform.machine()}; median (min-max) over "
               f"{args.rounds} interleaved rounds, each server started fresh per round. `genfast profile` TPOT of the "
               f"same model in the same rounds: {', '.join(f'{t:.2f}' for t in profiles)} ms. "
               f"`python benchmarks/peers/serving.py`.")
    write_results("peers_serving", {"runs": runs, "profile_tpot_ms": profiles}, caption, table)


if __name__ == "__main__":
    main()
