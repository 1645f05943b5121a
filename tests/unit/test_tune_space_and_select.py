"""The search space and the choice, without running trials: pure functions over fakes."""

import importlib.util

import pytest
import torch

from genfast.cli.tune_cmd import parse_duration
from genfast.compress.recipe import Recipe
from genfast.errors import ConfigError
from genfast.models.tiny import tiny_model
from genfast.tuning import select
from genfast.tuning.space import Candidate, SpaceOptions, build_space, thread_counts, variants


def test_a_missing_backend_is_left_out_with_its_install_hint(tokenizer, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    model, _ = tiny_model("llama", tokenizer)
    space = build_space(model, SpaceOptions(prune=[]))
    reasons = {x["axis"]: x["reason"] for x in space.left_out}
    assert "pip install 'genfast[onnx]'" in reasons["backend onnxruntime"]
    assert not any(c.recipe.backend == "onnxruntime" for c in space.candidates)
    if not torch.cuda.is_available():
        assert "NVIDIA GPU" in reasons["backend tensorrt"]
    assert any(c.recipe.backend == "torch" and c.recipe.steps == [{"technique": "Int8WeightOnly"}]
               for c in space.candidates)


def test_space_is_derived_from_capabilities_and_hardware(tokenizer, monkeypatch):
    from genfast.tuning import space as space_module

    model, _ = tiny_model("llama", tokenizer)
    monkeypatch.setattr("genfast.devices.precision_warning", lambda device, dtype: "emulated here")
    s = space_module.build_space(model, SpaceOptions(backends=["torch", "onnxruntime"], prune=["ffn=0.25"]))
    labels = [c.label for c in s.candidates]
    assert not any("bf16" in label or "fp16" in label for label in labels)  # emulated: left out, with why
    assert {x["axis"] for x in s.left_out} >= {"precision bf16", "precision fp16", "backend torch-compile"}
    # int4 with a group wider than the tiny model's 64 channels is refused by its own check or at trial time
    if importlib.util.find_spec("onnxruntime"):
        assert "onnxruntime int8" in labels  # the backend's own precision, from its capabilities
        assert not any(c.recipe.backend == "onnxruntime" and c.recipe.steps for c in s.candidates)
    pruned = [c for c in s.candidates if c.recipe.steps and c.recipe.steps[0]["technique"] == "PruneFFN"]
    assert [s["technique"] for s in pruned[0].recipe.steps][:2] == ["PruneFFN", "Distill"]
    assert len(pruned) == 2  # healed alone and healed + int8
    assert s.candidates.index(pruned[0]) > labels.index("torch fp32")  # dear steps come last


def test_variants_add_other_thread_counts_and_serving_batch():
    leader = Candidate(Recipe(steps=[{"technique": "Int8WeightOnly"}]))
    current = torch.get_num_threads()
    out = variants(leader, "k", "latency", sorted({1, current, current + 1}), concurrency=8)
    assert sorted(v.recipe.threads for v in out) == sorted({1, current + 1} - {current})
    assert all(v.parent == "k" for v in out)
    throughput = variants(leader, "k", "throughput", [current], concurrency=8)
    assert sorted(v.recipe.max_running for v in throughput) == [2, 4]
    assert thread_counts([4, 1, 4]) == [1, 4] and thread_counts()[0] == 1


def test_pareto_front_and_paired_comparison():
    points = [("a", 1.0, 0.00), ("b", 0.5, 0.01), ("c", 0.6, 0.02), ("d", 0.4, 0.05)]
    assert select.pareto_front(points, higher_is_better=False) == ["a", "b", "d"]
    clear = select.paired_speedup([1.0, 1.1, 0.9, 1.0], [2.0, 2.1, 2.0, 1.9], higher_is_better=False)
    assert clear["ratio"] == pytest.approx(2.0, rel=0.1) and not clear["tie"]
    noise = select.paired_speedup([1.0, 1.1, 0.9, 1.0], [1.05, 0.95, 1.0, 1.0], higher_is_better=False)
    assert noise["tie"]
    rate = select.paired_speedup([200.0, 210.0], [100.0, 100.0], higher_is_better=True)
    assert rate["ratio"] == pytest.approx(2.05, rel=0.01)


def test_durations():
    assert parse_duration("20m") == 1200 and parse_duration("90") == 90 and parse_duration("1.5h") == 5400
    with pytest.raises(ConfigError, match="not a duration"):
        parse_duration("soon")


@pytest.mark.parametrize("options, says", [
    (SpaceOptions(threads=[0]), "--threads must be at least 1"),
    (SpaceOptions(backends=["nosuch"]), "Unknown backend 'nosuch'"),
    (SpaceOptions(backends=["hf"]), "baseline"),
    (SpaceOptions(prune=["ffn=1.5"]), "fraction"),
    (SpaceOptions(heal_steps=-1), "steps >= 1"),
])
def test_space_options_are_checked_before_any_work(options, says):
    with pytest.raises(ConfigError, match=says):
        options.validate()


def test_damaged_trial_records_are_skipped_and_counted(tmp_path):
    from genfast.tuning.records import TrialLog

    log = TrialLog(tmp_path / "trials.jsonl")
    good = {"key": "k", "status": "timed", "baseline": False, "label": "x", "recipe": {}, "screen": {"tpot_s": 0.1}}
    log.append(good)
    with log.path.open("a") as f:
        f.write('[1, 2, 3]\n{"key": "j", "status": "timed"}\n{"key": "n", "status": "timed", "baseline": false, '
                '"label": "y", "recipe": {}, "screen": {"tpot_s": -1}}\n{"torn": \n')
    assert log.load() == {"k": good} and log.damaged == 4


def test_a_model_inside_the_output_is_refused(tmp_path):
    from genfast.output_dir import check_output_dir

    (tmp_path / "out" / "best").mkdir(parents=True)
    (tmp_path / "out" / "trials.jsonl").write_text("")
    with pytest.raises(ConfigError, match="lies inside the output"):
        check_output_dir(tmp_path / "out", tmp_path / "out" / "best", marker="trials.jsonl")


def test_a_winner_slower_than_generate_is_not_called_a_winner():
    from genfast.report.tune_report import answer_line

    report = {"objective": {"metric": "tpot_s", "name": "latency"},
              "winner": {"label": "torch fp32", "value": 0.04, "quality": None, "runner_up": None,
                         "vs_generate": {"ratio": 0.13, "ci95": [0.01, 0.9], "rounds": 3, "tie": False},
                         "beats_generate": False}}
    line = answer_line(report)
    assert line.startswith("Nothing beat transformers' generate()") and "keep the original" in line


def test_diagnosis_says_slower_when_it_is():
    reference = {"build": {"weight_bytes_per_step": 100}, "status": "timed", "baseline": False}
    slow = {"status": "timed", "baseline": False, "recipe": {"backend": "torch"}, "speedup_vs_reference": 0.61,
            "build": {"weight_bytes_per_step": 50, "warnings": []}, "screen": {"roofline_fraction": 0.5}}
    assert select.diagnosis(slow, reference, decode_bound=False).startswith("slower than")
    assert select.diagnosis({**slow, "speedup_vs_reference": 1.0}, reference, decode_bound=False).startswith("about")


def test_rounds_noise_made_non_positive_are_no_measurement(monkeypatch):
    """On a busy machine generate()'s 1-token run can outlast its full run: no TPOT, not a negative one;
    and a final round without a positive value is left out of the paired ratio."""
    from genfast.tuning import outcome, trial

    assert outcome._final_values({"rounds": {"a": [{"tpot_s": 0.02}, {"tpot_s": -0.01}, {"tpot_s": None},
                                                   {"tpot_s": 0.0}]}}, "a", "tpot_s") == [0.02]
    from types import SimpleNamespace

    from genfast.profiling.workload import Workload

    class Tokenizer:
        eos_token_id = 0

        def __call__(self, text):
            return {"input_ids": list(range(64))}

    handle = SimpleNamespace(device="cpu", tokenizer=Tokenizer(), model=SimpleNamespace(generate=lambda *a, **k: None))
    clock = iter([0.0, 0.5, 0.5, 0.9])  # a 1-token run of 0.5 s, then a full run of 0.4 s
    monkeypatch.setattr(trial.time, "perf_counter", lambda: next(clock))
    timed = trial.time_generate(handle, Workload(prompt_lens=[8], output_len=4, warmup=0, repeats=1))
    assert timed["tpot_s"] is None and timed["decode_tokens_per_s"] is None
