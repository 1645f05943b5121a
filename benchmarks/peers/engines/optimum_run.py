"""optimum-intel (OpenVINO) or optimum-onnx (ONNX Runtime):
python optimum_run.py KIND MODEL_DIR PROMPT NEW RUNS THREADS, KIND = openvino | onnxruntime"""

import sys
import time

import torch
from _workload import emit, measure, prompt_ids

kind, model_dir, prompt, new, runs, threads = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:])
torch.set_num_threads(threads)
if kind == "openvino":
    import openvino
    from optimum.intel import OVModelForCausalLM

    model = OVModelForCausalLM.from_pretrained(model_dir, ov_config={"INFERENCE_NUM_THREADS": str(threads),
                                                                      "PERFORMANCE_HINT": "LATENCY"})
    version = f"optimum-intel, openvino {openvino.__version__}"
else:
    import onnxruntime
    from optimum.onnxruntime import ORTModelForCausalLM

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    model = ORTModelForCausalLM.from_pretrained(model_dir, session_options=options)
    version = f"optimum-onnx, onnxruntime {onnxruntime.__version__}"
ids = torch.tensor([prompt_ids(prompt, model.config.vocab_size)])


class Streamer:
    """generate() hands it the prompt, then each new token: it notes when each token came."""

    def __init__(self):
        self.times, self.seen_prompt = [], False

    def put(self, value):
        if self.seen_prompt:
            self.times.append(time.perf_counter())
        self.seen_prompt = True

    def end(self):
        pass


def generate():
    streamer = Streamer()
    model.generate(ids, max_new_tokens=new, min_new_tokens=new, do_sample=False, streamer=streamer)
    return streamer.times


emit({**measure(generate, runs, new), "version": version})
