"""CTranslate2: python ctranslate2_run.py MODEL_DIR COMPUTE_TYPE PROMPT NEW RUNS THREADS [BATCH]

One sequence streams its tokens (generate_tokens); a batch has no stream, so its TTFT is a
one-token generate_batch and its decode rate the rest of a full one."""

import json
import sys
import time
from pathlib import Path

import ctranslate2
from _workload import emit, measure, prompts, token_times, workload_args

model, compute_type = sys.argv[1:3]
prompt, new, runs, threads, batch = workload_args(sys.argv[3:])
vocabulary = json.loads((Path(model) / "vocabulary.json").read_text())
batch_tokens = [[vocabulary[i] for i in ids] for ids in prompts(batch, prompt, len(vocabulary))]
generator = ctranslate2.Generator(model, device="cpu", compute_type=compute_type, intra_threads=threads)


def generate():
    if batch == 1:
        return token_times(generator.generate_tokens(batch_tokens[0], max_length=new, sampling_topk=1, end_token=[]))
    start = time.perf_counter()
    generator.generate_batch(batch_tokens, max_length=1, sampling_topk=1, end_token=[],
                             include_prompt_in_result=False)
    first = time.perf_counter()
    generator.generate_batch(batch_tokens, max_length=new, min_length=new, sampling_topk=1, end_token=[],
                             include_prompt_in_result=False)
    end = time.perf_counter()
    # the full run repeats the one-token run's prefill; the rest of it is its new - 1 decode steps,
    # laid out evenly (only the first and the last moment enter the rate)
    decode = (end - first) - (first - start)
    return [first + i * decode / (new - 1) for i in range(new)]

emit({**measure(generate, runs, new, batch), "version": ctranslate2.__version__})
