"""Peak RSS of quantized GPT-2-small artifacts: after loading, and while generating.

    python benchmarks/artifact_memory.py

Saves a seeded GPT-2-small-shaped model (random weights) as int8-weight and int4-weight (groups of 32)
artifacts, then runs `genfast profile --json` on each (128-token prompt, 128 new tokens, 2 threads)
in fresh processes, REPEATS times interleaved: the same process measures differently between runs,
so every run is kept. Beside them, the issue's bound: 1.5 x (weights on disk + KV cache + a bare
`import torch`, measured here too). Writes benchmarks/results/artifact_memory.{json,md}.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _results import markdown_table, write_results  # noqa: E402

REPEATS, PROMPT, NEW = 3, 128, 128
MIB = 2**20
BARE_TORCH = ("import torch\nwith open('/proc/self/status') as f:\n"
              "    print(next(int(l.split()[1]) * 1024 for l in f if l.startswith('VmHWM:')))")


def save_artifacts(root: Path) -> dict[str, Path]:
    import torch
    from transformers import AutoModelForCausalLM, GPT2Config

    import genfast
    from genfast.compress import compress_, recipe_of
    from genfast.compress.quantize import Int4WeightOnly, Int8WeightOnly
    from genfast.compress.recipe import Recipe
    from genfast.models.tiny import tiny_tokenizer

    config = GPT2Config(vocab_size=50257, n_embd=768, n_layer=12, n_head=12, n_positions=1024)
    paths = {}
    for name, step in (("int8-weight", Int8WeightOnly()), ("int4-weight", Int4WeightOnly(32))):
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(config).eval()
        handle = genfast.from_model(model, tiny_tokenizer())
        compress_(handle, step)
        paths[name] = genfast.save(handle, root / name, Recipe(steps=recipe_of(model), backend="torch"))
    return paths


def profile_memory(path: Path) -> dict:
    out = subprocess.run([sys.executable, "-m", "genfast.cli.main", "profile", "--model", str(path), "-p", str(PROMPT),
                          "-n", str(NEW), "--repeats", "1", "--threads", "2", "--json"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)["cases"][0]["memory"]


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="genfast-memory-") as tmp:
        paths = save_artifacts(Path(tmp))
        disk = {name: sum(f.stat().st_size for f in path.glob("*.safetensors")) for name, path in paths.items()}
        runs: dict[str, list[dict]] = {name: [] for name in paths}
        torch_only = []
        for _ in range(REPEATS):
            torch_only.append(int(subprocess.run([sys.executable, "-c", BARE_TORCH], check=True, capture_output=True,
                                                 text=True).stdout))
            for name, path in paths.items():
                runs[name].append(profile_memory(path))
    kv = 12 * 2 * (PROMPT + NEW) * 768 * 4  # fp32 keys and values of every layer for the whole sequence
    rows = []
    for name, memory in runs.items():
        bound = 1.5 * (disk[name] + kv + max(torch_only))
        load = [m["peak_rss_load_bytes"] / MIB for m in memory]
        run = [m["peak_rss_run_bytes"] / MIB for m in memory]
        rows.append([name, f"{disk[name] / MIB:.0f}", ", ".join(f"{v:.0f}" for v in load),
                     ", ".join(f"{v:.0f}" for v in run), f"{bound / MIB:.0f}"])
    caption = (f"GPT-2-small shape (random weights), `genfast profile -p {PROMPT} -n {NEW} --threads 2`, {REPEATS} "
               f"fresh processes per artifact, interleaved; a bare `import torch` peaked at "
               f"{', '.join(f'{t / MIB:.0f}' for t in torch_only)} MiB; KV cache {kv / MIB:.0f} MiB. "
               "`python benchmarks/artifact_memory.py`.")
    write_results("artifact_memory", {"runs": runs, "disk_bytes": disk, "bare_torch_bytes": torch_only,
                                      "kv_bytes": kv}, caption,
                  markdown_table(["artifact", "weights on disk MiB", "peak RSS after loading MiB (each run)",
                                  "peak RSS while generating MiB (each run)",
                                  "1.5 x (weights + KV + torch) MiB"], rows))


if __name__ == "__main__":
    main()
