"""optimum-intel (OpenVINO) or optimum-onnx (ONNX Runtime):
python optimum_run.py KIND MODEL_DIR PROMPT NEW RUNS THREADS [BATCH], KIND = openvino | onnxruntime"""

import sys
import time

import torch
from _workload import emit, measure, prompts, workload_args

kind, model_dir = sys.argv[1:3]
prompt, new, runs, threads, batch = workload_args(sys.argv[3:])
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
ids = torch.tensor(prompts(batch, prompt, model.config.vocab_size))


class Streamer:
    """generate() hands it the prompts, then each step's new tokens: it notes when each step's came."""

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


emit({**measure(generate, runs, new, batch), "version": version})
