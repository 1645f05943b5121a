"""genfast: python genfast_run.py ARTIFACT_DIR BACKEND PRECISION PROMPT NEW RUNS THREADS [BATCH] (genfast's venv)

BACKEND and PRECISION ``recipe``: the ones the artifact's recipe names (`genfast tune`'s pick)."""

import sys

import torch
from _workload import emit, measure, prompts, token_times, workload_args

artifact, backend, precision = sys.argv[1:4]
prompt, new, runs, threads, batch = workload_args(sys.argv[4:])
torch.set_num_threads(threads)
import genfast  # noqa: E402
from genfast.backends.registry import build_runtime  # noqa: E402
from genfast.runtime.sampling import greedy  # noqa: E402

handle = genfast.load(artifact)
backend = handle.backend if backend == "recipe" else backend
precision = handle.precision if precision == "recipe" else precision
runtime = build_runtime(backend, handle, precision=precision, max_cache_len=prompt + new, batch=batch)
ids = torch.tensor(prompts(batch, prompt, handle.model.config.vocab_size))


def tokens():
    with torch.inference_mode():
        logits, cache = runtime.prefill(ids)
        token = greedy(logits)
        yield token
        for _ in range(new - 1):
            logits, cache = runtime.decode(token, cache)
            token = greedy(logits)
            yield token


emit({**measure(lambda: token_times(tokens()), runs, new, batch), "version": f"genfast {genfast.__version__}"})
