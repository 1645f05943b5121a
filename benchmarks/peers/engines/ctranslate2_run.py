"""CTranslate2: python ctranslate2_run.py MODEL_DIR COMPUTE_TYPE PROMPT NEW RUNS THREADS"""

import json
import sys
from pathlib import Path

import ctranslate2
from _workload import emit, measure, prompt_ids, token_times

model, compute_type, prompt, new, runs, threads = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:])
vocabulary = json.loads((Path(model) / "vocabulary.json").read_text())
tokens = [vocabulary[i] for i in prompt_ids(prompt, len(vocabulary))]
generator = ctranslate2.Generator(model, device="cpu", compute_type=compute_type, intra_threads=threads)


def generate():
    return token_times(generator.generate_tokens(tokens, max_length=new, sampling_topk=1, end_token=[]))


emit({**measure(generate, runs, new), "version": ctranslate2.__version__})
