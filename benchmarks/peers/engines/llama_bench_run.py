"""llama.cpp, timed by its own llama-bench: python llama_bench_run.py BIN_DIR MODEL.gguf PROMPT NEW RUNS THREADS

llama-bench measures prompt processing and generation apart; TTFT = PROMPT / its prompt rate.
This process's only child is llama-bench, so its children's peak RSS is llama-bench's.
"""

import json
import os
import resource
import subprocess
import sys

from _workload import emit

bin_dir, gguf, prompt, new, runs, threads = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:])
out = subprocess.run([os.path.join(bin_dir, "llama-bench"), "-m", gguf, "-p", str(prompt), "-n", str(new),
                      "-t", str(threads), "-r", str(runs), "-o", "json"], check=True, capture_output=True, text=True,
                     env={**os.environ, "LD_LIBRARY_PATH": bin_dir})
tests = json.loads(out.stdout)
prompt_test = next(t for t in tests if t["n_prompt"] == prompt and t["n_gen"] == 0)
gen_test = next(t for t in tests if t["n_gen"] == new and t["n_prompt"] == 0)
emit({"ttft_s": prompt / prompt_test["avg_ts"], "decode_tok_s": gen_test["avg_ts"],
      "peak_rss_bytes": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024,
      "version": f"llama.cpp vendored in llama-cpp-python 0.3.36 ({tests[0].get('cpu_info', '')})"})
