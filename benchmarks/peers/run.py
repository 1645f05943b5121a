"""genfast beside llama.cpp, CTranslate2, optimum-intel (OpenVINO) and optimum-onnx (ONNX Runtime), one workload.

    bash benchmarks/peers/setup.sh          # once: each peer in its own venv (PEERS_DIR)
    python benchmarks/peers/run.py          # genfast's venv; --rounds, --engines to narrow

A GPT-2-small-shaped model with random weights (seeded; 124 M parameters, vocabulary 50257) is
saved once as a Hugging Face directory and converted by each peer's own tool (CTranslate2's
converter, llama.cpp's convert_hf_to_gguf + llama-quantize, optimum-cli export), and `genfast tune`
is asked once for its pick for this model and workload (TUNE_BUDGET, no pruning: the weights are
random, so there is nothing for distillation to heal). Workload: a
128-token prompt, 128 new tokens, greedy, 2 threads, at batch 1 and batch 8 (eight different
prompts decoded together: decode rate over all of their tokens, TTFT of all eight prompts), each
engine in its own process: one warm-up and RUNS timed runs per process (median per round), rounds
interleaved (every engine once per round) with a memory-bandwidth probe before each round. llama.cpp
is timed by its own llama-bench (prompt processing and generation measured apart: TTFT = 128 / its
prompt rate) and, at batch 8, llama-batched-bench.
Never run in CI: it needs the peers installed and takes 15-30 minutes.
Writes benchmarks/results/peers.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from _results import markdown_table, write_results  # noqa: E402

PEERS = Path(os.environ.get("PEERS_DIR", Path.home() / ".cache/genfast/peers"))
MODELS = PEERS / "models" / "gpt2-small-random"
PROMPT, NEW, RUNS, THREADS = 128, 128, 5, 2
LLAMA_BIN = PEERS / "llama.cpp" / "build" / "bin"
TUNE_BUDGET = "15m"


def peer_python(venv: str) -> str:
    return str(PEERS / venv / "bin" / "python")


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kwargs)


def padded_tokenizer(vocab_size: int):
    """genfast's small test tokenizer with unreachable entries up to ``vocab_size`` (CTranslate2's
    converter wants the tokenizer's vocabulary as large as the model's)."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    from genfast.models.tiny import tiny_tokenizer

    small = tiny_tokenizer()
    spec = json.loads(small.backend_tokenizer.to_str())
    vocab = spec["model"]["vocab"]
    vocab.update({f"<unused{i}>": i for i in range(len(vocab), vocab_size)})
    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(json.dumps(spec)), bos_token=small.bos_token,
                                   eos_token=small.eos_token, unk_token=f"<unused{vocab_size - 1}>")


def readable_by_transformers4(directory: Path) -> None:
    """The peers' venvs have transformers 4, which does not know transformers 5's tokenizer class name."""
    tokenizer_config = directory / "tokenizer_config.json"
    settings = json.loads(tokenizer_config.read_text())
    tokenizer_config.write_text(json.dumps({**settings, "tokenizer_class": "PreTrainedTokenizerFast"}))


def build_models() -> None:
    """The HF directory, genfast's artifacts and every peer's conversion (each once; kept in PEERS_DIR)."""
    import torch
    from transformers import AutoModelForCausalLM, GPT2Config

    import genfast
    from genfast.compress import compress_, recipe_of
    from genfast.compress.quantize import Int4WeightOnly, Int8WeightOnly
    from genfast.compress.recipe import Recipe
    hf = MODELS / "hf"
    config = GPT2Config(vocab_size=50257, n_embd=768, n_layer=12, n_head=12, n_positions=1024,
                        bos_token_id=0, eos_token_id=0)
    for name, step in (("hf", None), ("genfast-int8", Int8WeightOnly()), ("genfast-int4", Int4WeightOnly(32))):
        if (MODELS / name / "config.json").exists():
            continue
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(config).eval()
        handle = genfast.from_model(model, padded_tokenizer(config.vocab_size))
        if step is not None:
            compress_(handle, step)
        genfast.save(handle, MODELS / name, Recipe(steps=recipe_of(model), backend="torch", precision="fp32"))
        readable_by_transformers4(MODELS / name)
        model_config = MODELS / name / "config.json"  # llama.cpp's converter reads GPT-2's old n_ctx
        model_config.write_text(json.dumps({**json.loads(model_config.read_text()), "n_ctx": config.n_positions}))
    conversions = {
        "ct2": [str(PEERS / "ctranslate2/bin/ct2-transformers-converter"), "--model", str(hf),
                "--output_dir", str(MODELS / "ct2")],
        "gguf-f32/model.gguf": [peer_python("llama-convert"), str(HERE / "llama_convert.py"),
                                str(PEERS / "llama.cpp/src"), str(hf), str(MODELS / "gguf-f32/model.gguf")],
        "gguf-q8_0/model.gguf": [str(LLAMA_BIN / "llama-quantize"), str(MODELS / "gguf-f32/model.gguf"),
                                 str(MODELS / "gguf-q8_0/model.gguf"), "Q8_0"],
        "gguf-q4_0/model.gguf": [str(LLAMA_BIN / "llama-quantize"), str(MODELS / "gguf-f32/model.gguf"),
                                 str(MODELS / "gguf-q4_0/model.gguf"), "Q4_0"],
        "ov-int8": [str(PEERS / "optimum-intel/bin/optimum-cli"), "export", "openvino", "--model", str(hf),
                    "--task", "text-generation-with-past", "--weight-format", "int8", str(MODELS / "ov-int8")],
        "ov-int4": [str(PEERS / "optimum-intel/bin/optimum-cli"), "export", "openvino", "--model", str(hf),
                    "--task", "text-generation-with-past", "--weight-format", "int4", "--group-size", "32",
                    "--ratio", "1.0", str(MODELS / "ov-int4")],
        "ort-fp32": [str(PEERS / "optimum-onnx/bin/optimum-cli"), "export", "onnx", "--model", str(hf),
                     "--task", "text-generation-with-past", str(MODELS / "ort-fp32")],
    }
    # genfast tune's own answer for this model and workload (its winner lands in genfast-tuned/best)
    conversions["genfast-tuned/best"] = [sys.executable, "-m", "genfast.cli.main", "tune", "--model", str(hf), "-o",
                                         str(MODELS / "genfast-tuned"), "-p", str(PROMPT), "-n", str(NEW), "--threads",
                                         str(THREADS), "--no-prune", "--time-budget", TUNE_BUDGET]
    for target, cmd in conversions.items():
        path = MODELS / target
        if path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        print(f"converting: {target}", flush=True)
        run(cmd)


def engines(batch: int) -> dict[str, list[str]]:
    """name -> the command that prints one JSON result for ``batch`` sequences."""
    g = [sys.executable, str(HERE / "engines/genfast_run.py")]
    tail = [str(PROMPT), str(NEW), str(RUNS), str(THREADS), str(batch)]
    ct2 = [peer_python("ctranslate2"), str(HERE / "engines/ctranslate2_run.py"), str(MODELS / "ct2")]
    tuned = MODELS / "genfast-tuned" / "best"
    ov = [peer_python("optimum-intel"), str(HERE / "engines/optimum_run.py"), "openvino"]
    return {
        "genfast torch fp32": [*g, str(MODELS / "hf"), "torch", "fp32", *tail],
        "genfast torch int8-weight": [*g, str(MODELS / "genfast-int8"), "torch", "fp32", *tail],
        "genfast torch int4-weight (g32)": [*g, str(MODELS / "genfast-int4"), "torch", "fp32", *tail],
        "genfast onnxruntime fp32": [*g, str(MODELS / "hf"), "onnxruntime", "fp32", *tail],
        "genfast openvino int8": [*g, str(MODELS / "hf"), "openvino", "int8", *tail],
        "genfast openvino int4 (g32)": [*g, str(MODELS / "hf"), "openvino", "int4", *tail],
        f"genfast tune's pick ({tuned_label(tuned)})": [*g, str(tuned), "recipe", "recipe", *tail],
        "CTranslate2 int8": [*ct2, "int8", *tail],
        "CTranslate2 fp32": [*ct2, "float32", *tail],
        **{f"llama.cpp {kind}": [sys.executable, str(HERE / "engines/llama_bench_run.py"), str(LLAMA_BIN),
                                 str(MODELS / f"gguf-{kind.lower()}/model.gguf"), *tail]
           for kind in ("F32", "Q8_0", "Q4_0")},
        "optimum-intel OpenVINO int8": [*ov, str(MODELS / "ov-int8"), *tail],
        "optimum-intel OpenVINO int4 (g32)": [*ov, str(MODELS / "ov-int4"), *tail],
        "optimum-onnx ONNX Runtime fp32": [peer_python("optimum-onnx"), str(HERE / "engines/optimum_run.py"),
                                           "onnxruntime", str(MODELS / "ort-fp32"), *tail],
    }


def tuned_label(artifact: Path) -> str:
    """What `genfast tune` picked, from its artifact's recipe: backend, precision, compression, threads."""
    if not (artifact / "recipe.json").exists():
        return "not tuned yet"
    recipe = json.loads((artifact / "recipe.json").read_text())
    steps = [step["technique"] for step in recipe.get("steps", [])]
    return " ".join([recipe.get("backend", "torch"), recipe.get("precision", "fp32"), *steps,
                     f"{recipe.get('threads') or 'default'} threads"])


def measure_once(command: list[str]) -> dict:
    out = run(command, cwd=HERE / "engines")
    return json.loads(out.stdout.strip().splitlines()[-1])


def bandwidth_gbs() -> float:
    from genfast.profiling.hardware import measure_read_bandwidth

    return measure_read_bandwidth("cpu", size_mb=512, repeats=5) / 1e9


def main() -> None:
    global RUNS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--engines", nargs="*", help="a subset of the engine names (substring match)")
    parser.add_argument("--runs", type=int, default=RUNS, help="timed runs per engine process")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8], help="sequences decoded together")
    args = parser.parse_args()
    RUNS = args.runs
    import torch

    torch.set_num_threads(THREADS)
    build_models()
    chosen = {f"{name} | {batch}": command for batch in args.batch for name, command in engines(batch).items()
              if not args.engines or any(part in name for part in args.engines)}
    results: dict[str, list[dict]] = {name: [] for name in chosen}
    probes = []
    for r in range(args.rounds):
        probes.append(bandwidth_gbs())
        for name, command in chosen.items():
            try:
                results[name].append(measure_once(command))
            except (subprocess.CalledProcessError, StopIteration, json.JSONDecodeError) as exc:
                detail = getattr(exc, "stderr", "") or str(exc)
                results[name].append({"error": detail.strip().splitlines()[-1][:300] if detail else repr(exc)})
            print(f"round {r + 1} {name}: {results[name][-1]}", flush=True)
    probes.append(bandwidth_gbs())
    write(results, probes, args.rounds)


def spread(values: list[float], fmt: str) -> str:
    """median (min-max), each formatted with ``fmt``."""
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def write(results: dict, probes: list[float], rounds: int) -> None:
    rows = []
    for key, runs in results.items():
        name, batch = key.split(" | ")
        ok = [r for r in runs if "error" not in r]
        if not ok:
            rows.append([name, batch, "failed: " + runs[-1]["error"], "", "", ""])
            continue
        rss = [r["peak_rss_bytes"] / 2**20 for r in ok if r.get("peak_rss_bytes")]
        rows.append([name, batch, spread([r["decode_tok_s"] for r in ok], "{:.1f}"),
                     spread([r["ttft_s"] * 1e3 for r in ok], "{:.0f}"),
                     f"{max(rss):.0f}" if rss else "-", ok[0].get("version", "")])
    table = markdown_table(["engine", "batch", "decode tok/s", "TTFT ms", "peak RSS MiB", "version"], rows)
    caption = (f"GPT-2-small shape (random weights), {PROMPT}-token prompts, {NEW} new tokens, greedy, "
               f"{THREADS} threads, {platform.processor() or platform.machine()}; above batch 1 the decode rate counts "
               f"every sequence's tokens and TTFT is the time to the first tokens of all of them; median (min-max) "
               f"over {rounds} interleaved rounds, each round an engine's median of {RUNS} runs after a warm-up, in "
               f"its own process. Memory read bandwidth probed before each round and after the last: "
               f"{', '.join(f'{p:.0f}' for p in probes)} GB/s. `python benchmarks/peers/run.py`.")
    write_results("peers", {"results": results, "bandwidth_gbs": probes}, caption, table)


if __name__ == "__main__":
    main()
