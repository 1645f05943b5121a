import hashlib
import json

import pytest

from genfast.models.loading import load
from tests.e2e.test_cli_profile import run_cli

FAST = ["--prompt-len", "16", "--new-tokens", "8", "--repeats", "2"]


def _digest(directory):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


def test_optimize_writes_a_loadable_artifact_and_never_touches_the_original(tiny_dirs, tmp_path, capsys):
    source = tiny_dirs["llama"]
    before = _digest(source)
    out = tmp_path / "out"
    code, stdout, _ = run_cli(["optimize", "--model", str(source), "-o", str(out), "--prune", "ffn=0.25",
                               "--prune", "heads=0.5", "--max-ppl-increase", "100%", *FAST], capsys)
    assert code == 0, stdout
    assert _digest(source) == before
    for name in ("config.json", "model.safetensors", "tokenizer.json", "recipe.json", "report.json", "report.md",
                 "before_after.png"):
        assert (out / name).stat().st_size > 0
    recipe = json.loads((out / "recipe.json").read_text())
    assert [s["technique"] for s in recipe["steps"]] == ["PruneFFN", "PruneHeads"]
    report = json.loads((out / "report.json").read_text())
    assert report["after"]["parameters"] < report["before"]["parameters"]
    assert "| decode tokens/s |" in (out / "report.md").read_text()
    handle = load(str(out))
    assert handle.recipe["steps"][0]["fraction"] == 0.25
    assert handle.config.num_key_value_heads == 1


def test_profile_uses_the_artifacts_backend(tiny_dirs, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    out = tmp_path / "out"
    code, _, _ = run_cli(["optimize", "--model", str(tiny_dirs["gpt2"]), "-o", str(out), "--backend", "onnxruntime",
                          "--precision", "int8", "--max-ppl-increase", "100%", *FAST], capsys)
    assert code == 0
    code, stdout, _ = run_cli(["profile", "--model", str(out), "-p", "8", "-n", "4", "--repeats", "1", "--json"],
                              capsys)
    assert code == 0 and json.loads(stdout)["runtime"]["backend"] == "onnxruntime-int8"


def test_recipe_file(tiny_dirs, tmp_path, capsys):
    recipe = tmp_path / "recipe.json"
    recipe.write_text(json.dumps({"steps": [{"technique": "PruneLayers", "count": 1}], "backend": "torch"}))
    code, _, _ = run_cli(["optimize", "--model", str(tiny_dirs["qwen2"]), "-o", str(tmp_path / "o"),
                          "--recipe", str(recipe), "--max-ppl-increase", "100%", *FAST], capsys)
    assert code == 0 and load(str(tmp_path / "o")).config.num_hidden_layers == 1


def test_quantize_to_int4_weights_from_a_yaml_recipe(tiny_dirs, tmp_path, capsys):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("steps:\n  - technique: PruneLayers\n    count: 1\n"
                      "  - technique: Int4WeightOnly\n    group_size: 64\nbackend: torch\n")
    out = tmp_path / "o"
    code, stdout, err = run_cli(["optimize", "--model", str(tiny_dirs["llama"]), "-o", str(out), "--recipe",
                                 str(recipe), "--max-ppl-increase", "100%", *FAST], capsys)
    assert code == 0, err
    report = json.loads((out / "report.json").read_text())
    assert report["after"]["weight_bytes_per_step"] < 0.5 * report["before"]["weight_bytes_per_step"]
    handle = load(str(out))
    assert type(handle.model.model.layers[0].mlp.up_proj).__name__ == "Int4WeightOnlyLinear"
    assert handle.model.model.layers[0].mlp.up_proj.group_size == 64
    code, stdout, _ = run_cli(["profile", "--model", str(out), "-p", "8", "-n", "4", "--repeats", "1", "--json"],
                              capsys)
    assert code == 0 and json.loads(stdout)["runtime"]["backend"] == "torch"


def test_distilling_after_quantizing_is_refused_before_any_work(tiny_dirs, tmp_path, capsys):
    recipe = tmp_path / "recipe.yml"
    recipe.write_text("steps: [{technique: Int8WeightOnly}, {technique: Distill, steps: 2}]\n")
    code, _, err = run_cli(["optimize", "--model", str(tiny_dirs["llama"]), "-o", str(tmp_path / "o"), "--recipe",
                            str(recipe)], capsys)
    assert code == 1 and "Distill comes after a quantization or cast step" in err and "applying" not in err


def test_quantize_flag_is_the_last_step(tiny_dirs, tmp_path, capsys):
    out = tmp_path / "o"
    code, _, err = run_cli(["optimize", "--model", str(tiny_dirs["gpt2"]), "-o", str(out), "--quantize", "int8-weight",
                            "--max-ppl-increase", "5%", *FAST], capsys)
    assert code == 0, err
    assert json.loads((out / "recipe.json").read_text())["steps"] == [
        {"technique": "Int8WeightOnly", "include_lm_head": True, "version": 1}]
    report = json.loads((out / "report.json").read_text())
    assert report["quality"]["budget"]["passed"]


def test_over_budget_exits_3_and_still_writes_the_report(tiny_dirs, tmp_path, capsys):
    code, stdout, _ = run_cli(["optimize", "--model", str(tiny_dirs["llama"]), "-o", str(tmp_path / "o"),
                               "--prune", "unstructured=0.9", "--max-ppl-increase", "0%", "--min-top1-agreement",
                               "0.99", *FAST], capsys)
    assert code == 3 and "FAIL" in stdout
    assert "FAIL" in (tmp_path / "o" / "report.md").read_text()


@pytest.mark.parametrize("args, message", [
    (["--prune", "ffn=1.2"], "must be in [0, 1)"),
    (["--prune", "rows=0.5"], "Cannot read --prune 'rows=0.5'"),
    (["--prune", "heads=lots"], "needs a number"),
    (["--backend", "vulkan"], "Unknown backend 'vulkan'"),
    (["--recipe", "/no/such/recipe.json"], "No recipe file"),
    (["--quantize", "int3"], "Unknown --quantize 'int3'. Hint: Use one of: int8-weight, int4-weight"),
    (["--quantize", "int4-weight", "--group-size", "48"], "must be one of 32, 64, 128, 256, got 48"),
    (["--quantize", "int4-weight", "--group-size", "128"], "does not divide the 64 input channels"),
    (["--group-size", "64"], "--group-size goes with --quantize int4-weight"),
    (["--quantize", "int8-weight", "--backend", "openvino"], "the openvino backend cannot run"),
    (["--quantize", "bf16", "--backend", "onnxruntime"], "takes fp32 weights, not bf16"),
])
def test_bad_steps_are_one_line_errors(tiny_dirs, tmp_path, capsys, args, message):
    code, _, err = run_cli(["optimize", "--model", str(tiny_dirs["llama"]), "-o", str(tmp_path / "o"), *args],
                           capsys)
    assert code == 1 and err.strip().splitlines()[-1].startswith("Error:") and message in err
    assert "profiling" not in err and not (tmp_path / "o").exists()


def test_refuses_to_write_inside_the_original_or_over_foreign_files(tiny_dirs, tmp_path, capsys):
    source = tiny_dirs["gpt2"]
    code, _, err = run_cli(["optimize", "--model", str(source), "-o", str(source / "sub")], capsys)
    assert code == 1 and "inside the original model's directory" in err
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "cat.jpg").write_bytes(b"x")
    code, _, err = run_cli(["optimize", "--model", str(source), "-o", str(foreign)], capsys)
    assert code == 1 and "not a genfast artifact" in err and (foreign / "cat.jpg").exists()


def test_prune_then_heal_by_distillation(tiny_dirs, tmp_path, capsys):
    out = tmp_path / "o"
    code, stdout, err = run_cli(["optimize", "--model", str(tiny_dirs["llama"]), "-o", str(out), "--prune", "ffn=0.5",
                                 "--distill", "4", "--max-ppl-increase", "100%", *FAST], capsys)
    assert code == 0, err
    steps = json.loads((out / "recipe.json").read_text())["steps"]
    assert [s["technique"] for s in steps] == ["PruneFFN", "Distill"] and steps[1]["steps"] == 4
    assert not (out / ".distill").exists()
