"""genfast: python genfast_run.py ARTIFACT_DIR BACKEND PRECISION PROMPT NEW RUNS THREADS (genfast's venv)"""

import sys

import torch
from _workload import emit, measure, prompt_ids, token_times

artifact, backend, precision, prompt, new, runs, threads = *sys.argv[1:4], *map(int, sys.argv[4:])
torch.set_num_threads(threads)
import genfast  # noqa: E402
from genfast.backends.registry import build_runtime  # noqa: E402
from genfast.runtime.sampling import greedy  # noqa: E402

handle = genfast.load(artifact)
runtime = build_runtime(backend, handle, precision=precision, max_cache_len=prompt + new)
ids = torch.tensor([prompt_ids(prompt, handle.model.config.vocab_size)])


def tokens():
    with torch.inference_mode():
        logits, cache = runtime.prefill(ids)
        token = greedy(logits)
        yield token
        for _ in range(new - 1):
            logits, cache = runtime.decode(token, cache)
            token = greedy(logits)
            yield token


emit({**measure(lambda: token_times(tokens()), runs, new), "version": f"genfast {genfast.__version__}"})
