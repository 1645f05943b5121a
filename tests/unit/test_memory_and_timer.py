import time

import torch

from genfast.models.tiny import tiny_model
from genfast.profiling.memory import parameter_count, weight_bytes, weight_bytes_read_per_step
from genfast.profiling.timer import StageTimer


def test_tied_embeddings_are_counted_once(tokenizer):
    model, _ = tiny_model("gpt2", tokenizer)  # GPT-2 ties its head to the input embedding
    assert model.get_output_embeddings().weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()
    params = sum(p.numel() * 4 for p in model.parameters())  # parameters() already dedups tied ones
    buffers = sum(b.numel() * b.element_size() for b in model.buffers())
    assert weight_bytes(model) == params + buffers
    # the token table is read whole by the tied head; the position table is only gathered
    position_table = model.transformer.wpe.weight.numel() * 4
    assert weight_bytes_read_per_step(model) == params - position_table


def test_untied_input_embedding_is_not_read_per_step():
    emb, head = torch.nn.Embedding(100, 8), torch.nn.Linear(8, 100, bias=False)

    class Toy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb, self.head = emb, head

        def get_input_embeddings(self):
            return self.emb

        def get_output_embeddings(self):
            return self.head

    toy = Toy()
    assert parameter_count(toy) == 1600
    assert weight_bytes_read_per_step(toy) == 800 * 4


def test_stage_timer_accumulates_events():
    timer = StageTimer("cpu")
    for _ in range(3):
        with timer.stage("work"):
            time.sleep(0.01)
    assert len(timer.events["work"]) == 3
    assert 0.03 <= timer.total("work") < 0.5
    assert timer.total("missing") == 0


def test_peak_rss_restarts_from_the_current_rss():
    import sys

    import pytest

    from genfast.profiling.memory import peak_rss_bytes, reset_peak_rss

    if not sys.platform.startswith("linux"):
        pytest.skip("clear_refs is Linux's")
    burst = torch.ones(64 * 2**20, dtype=torch.uint8)  # 64 MiB, touched
    del burst
    high = peak_rss_bytes()
    assert reset_peak_rss()
    assert peak_rss_bytes() < high - 48 * 2**20


def test_a_child_process_reports_its_own_peak_not_its_parents():
    import subprocess
    import sys

    import pytest

    if not sys.platform.startswith("linux"):
        pytest.skip("VmHWM is Linux's")
    ballast = torch.ones(1024 * 2**20, dtype=torch.uint8)  # 1 GiB resident in this (parent) process
    code = "from genfast.profiling.memory import peak_rss_bytes; print(peak_rss_bytes())"
    child = int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    del ballast
    assert child < 768 * 2**20  # a torch import, not the parent's gigabyte (getrusage inherits it across exec)
