"""llama.cpp, timed by its own tools: python llama_bench_run.py BIN_DIR MODEL.gguf PROMPT NEW RUNS THREADS [BATCH]

One sequence: llama-bench, which measures prompt processing and generation apart (TTFT = PROMPT / its
prompt rate). A batch: llama-batched-bench, BATCH sequences of their own prompts decoded together
(TTFT = its time for all the prompts; decode rate over every sequence's tokens), run RUNS times.
This process's only children are those tools, so its children's peak RSS is theirs.
"""

import json
import os
import resource
import statistics
import subprocess
import sys

from _workload import emit, workload_args

bin_dir, gguf = sys.argv[1:3]
prompt, new, runs, threads, batch = workload_args(sys.argv[3:])
env = {**os.environ, "LD_LIBRARY_PATH": bin_dir}
version = "llama.cpp vendored in llama-cpp-python 0.3.36"
if batch == 1:
    out = subprocess.run([os.path.join(bin_dir, "llama-bench"), "-m", gguf, "-p", str(prompt), "-n", str(new),
                          "-t", str(threads), "-r", str(runs), "-o", "json"], check=True, capture_output=True,
                         text=True, env=env)
    tests = json.loads(out.stdout)
    prompt_test = next(t for t in tests if t["n_prompt"] == prompt and t["n_gen"] == 0)
    gen_test = next(t for t in tests if t["n_gen"] == new and t["n_prompt"] == 0)
    result = {"ttft_s": prompt / prompt_test["avg_ts"], "decode_tok_s": gen_test["avg_ts"],
              "version": f"{version} ({tests[0].get('cpu_info', '')})"}
else:
    rows = []
    for _ in range(runs):
        out = subprocess.run([os.path.join(bin_dir, "llama-batched-bench"), "-m", gguf, "-c",
                              str(batch * (prompt + new)), "-npp", str(prompt), "-ntg", str(new), "-npl", str(batch),
                              "-t", str(threads), "-tb", str(threads), "--output-format", "jsonl"],
                             check=True, capture_output=True, text=True, env=env)
        rows += [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    result = {"ttft_s": statistics.median(r["t_pp"] for r in rows),
              "decode_tok_s": statistics.median(r["speed_tg"] for r in rows), "version": version}
emit({**result, "peak_rss_bytes": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024})
