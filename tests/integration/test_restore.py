"""Loading a quantized artifact: the right tensors, ties kept, and no fp32 copy of its matrices."""

import json
import subprocess
import sys

import torch

import genfast
from genfast.compress import compress_
from genfast.compress.quantize import CastPrecision, Int4WeightOnly, Int8WeightOnly
from genfast.compress.restore import parameters_on_meta
from genfast.models.loading import from_model, load
from genfast.models.tiny import tiny_config, tiny_model


def test_parameters_go_to_meta_and_computed_buffers_stay_real(tokenizer):
    from transformers import AutoModelForCausalLM

    config = tiny_config("llama", len(tokenizer))
    with parameters_on_meta():
        empty = AutoModelForCausalLM.from_config(config)
    real = AutoModelForCausalLM.from_config(config)
    assert all(p.is_meta for p in empty.parameters())
    assert torch.equal(empty.model.rotary_emb.inv_freq, real.model.rotary_emb.inv_freq)
    assert not torch.nn.Linear(4, 4).weight.is_meta  # only inside the context


def test_int8_artifact_with_a_vocabulary_not_a_multiple_of_four_saves_and_reloads(tokenizer, tmp_path):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(tiny_config("gpt2", 509)).eval()  # packed head rows: 512
    handle = from_model(model, tokenizer)
    compress_(handle, Int8WeightOnly())
    genfast.save(handle, tmp_path)
    reloaded = load(str(tmp_path)).model
    ids = torch.randint(1, 500, (1, 9))
    with torch.no_grad():
        assert torch.equal(reloaded(ids).logits, handle.model(ids).logits)


def test_a_tied_head_stays_tied_whichever_name_was_saved(tokenizer, tmp_path):
    model, _ = tiny_model("gpt2", tokenizer)
    handle = from_model(model, tokenizer)
    compress_(handle, CastPrecision("bf16"))
    genfast.save(handle, tmp_path)
    reloaded = load(str(tmp_path), dtype="bf16").model
    assert reloaded.lm_head.weight is reloaded.transformer.wte.weight
    assert reloaded.lm_head.weight.dtype == torch.bfloat16
    ids = torch.randint(1, 400, (1, 7))
    with torch.no_grad():
        assert torch.equal(reloaded(ids).logits, handle.model(ids).logits)


_PEAK_GROWTH = """
import json, resource, sys
import torch
import genfast
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
handle = genfast.load(sys.argv[1])
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"growth_bytes": (after - before) * 1024}))
"""


def test_loading_an_int8_artifact_never_holds_its_matrices_in_fp32(tokenizer, tmp_path):
    """A 4-layer model with 64 M matrix parameters (256 MB in fp32, 64 MB in int8): loading it
    must not raise the process's peak by anything near the fp32 size (it did: built in fp32, then
    quantized, then overwritten)."""
    for config, out in ((Int8WeightOnly(), tmp_path / "int8"), (Int4WeightOnly(group_size=64), tmp_path / "int4")):
        model, _ = tiny_model("llama", tokenizer, hidden=1024, layers=4)
        matrix_fp32_bytes = sum(m.weight.numel() * 4 for m in model.modules() if isinstance(m, torch.nn.Linear))
        handle = from_model(model, tokenizer)
        compress_(handle, config)
        genfast.save(handle, out)
        del model, handle
        run = subprocess.run([sys.executable, "-c", _PEAK_GROWTH, str(out)], capture_output=True, text=True,
                             check=True)
        growth = json.loads(run.stdout.strip().splitlines()[-1])["growth_bytes"]
        assert growth < 0.45 * matrix_fp32_bytes, (type(config).__name__, growth, matrix_fp32_bytes)
