"""Every command fails safe: usage errors, bad files, interrupts, half-written outputs."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from genfast.errors import ModelLoadError
from genfast.models.loading import load
from tests.e2e.test_cli_profile import run_cli

FAST = ["--prompt-len", "16", "--new-tokens", "8", "--repeats", "1"]


@pytest.mark.parametrize("args, says", [
    (["profile", "--bogus"], "No such option: --bogus"),
    (["nosuch"], "No such command"),
    (["profile", "--prompt-len", "abc"], "--prompt-len"),
    (["optimize", "--model", "demo"], "Missing"),
])
def test_usage_errors_are_one_line_and_exit_2(args, says, capsys):
    code, _, err = run_cli(args, capsys)
    assert code == 2, err
    assert says in err and "Hint: see `genfast" in err and "unexpected" not in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("recipe, says", [
    ("steps: [PruneFFN]\n", "must be a list of mappings"),
    ("steps: 3\n", "must be a list of mappings"),
    ("steps: [{technique: PruneFFN, fraction: abc}]\n", "PruneFFN.fraction must be a number, got 'abc'"),
])
def test_broken_recipes_are_refused_before_any_work(recipe, says, tiny_dirs, tmp_path, capsys):
    path = tmp_path / "recipe.yaml"
    path.write_text(recipe)
    code, _, err = run_cli(["optimize", "--model", str(tiny_dirs["llama"]), "-o", str(tmp_path / "o"), "--recipe",
                            str(path)], capsys)
    assert code == 1 and says in err and "unexpected" not in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("content, code_, says", [
    (b"\x00\x01\x02binary", 1, "is a binary file"),
    ("café déjà vu".encode("latin-1"), 1, "is not UTF-8 text"),
    (None, 2, "does not exist"),
])
def test_compare_text_files(content, code_, says, tiny_dirs, tmp_path, capsys):
    path = tmp_path / "text.txt"
    if content is not None:
        path.write_bytes(content)
    code, _, err = run_cli(["compare", "--candidate", str(tiny_dirs["gpt2"]), "--reference", str(tiny_dirs["gpt2"]),
                            "--text", str(path)], capsys)
    assert code == code_ and says in err and "unexpected" not in err


def test_compare_window_beyond_the_context_is_refused(tiny_dirs, capsys):
    code, _, err = run_cli(["compare", "--candidate", str(tiny_dirs["qwen2"]), "--reference", str(tiny_dirs["qwen2"]),
                            "--window", "512"], capsys)
    assert code == 1 and "longer than the model's context of 256" in err


def test_outputs_that_cannot_be_written_are_refused_before_any_work(tiny_dirs, tmp_path, capsys):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    for out in (a_file, a_file / "below"):
        code, _, err = run_cli(["optimize", "--model", str(tiny_dirs["llama"]), "-o", str(out), "--quantize",
                                "int8-weight", *FAST], capsys)
        assert code == 1 and "is a file" in err and "applying" not in err
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        code, _, err = run_cli(["optimize", "--model", str(tiny_dirs["llama"]), "-o", str(locked / "o"), *FAST],
                               capsys)
        assert code == 1 and "Cannot write" in err


def test_quantized_artifacts_fail_loudly_in_plain_transformers(tiny_dirs, tmp_path, capsys):
    from transformers import AutoModelForCausalLM

    out = tmp_path / "int8"
    code, _, err = run_cli(["optimize", "--model", str(tiny_dirs["llama"]), "-o", str(out), "--quantize",
                            "int8-weight", "--max-ppl-increase", "100%", *FAST], capsys)
    assert code == 0, err
    with pytest.raises(OSError):
        AutoModelForCausalLM.from_pretrained(out)
    assert type(load(str(out)).model.model.layers[0].mlp.up_proj).__name__ == "Int8WeightOnlyLinear"
    assert not (out / ".genfast-incomplete").exists()


def _genfast(*args):
    return subprocess.Popen([sys.executable, "-m", "genfast.cli.main", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupted_distillation_resumes_and_its_output_is_marked(sig, code, tiny_dirs, tmp_path):
    out = tmp_path / "out"
    args = ["optimize", "--model", str(tiny_dirs["llama"]), "-o", str(out), "--prune", "ffn=0.5", "--distill",
            "400", "--max-ppl-increase", "100%", *FAST]
    proc = _genfast(*args)
    ckpt = out / ".distill" / "distill.pt"
    deadline = time.monotonic() + 300
    while not ckpt.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    assert ckpt.exists(), proc.communicate()[1]
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    last = err.strip().splitlines()[-1]
    word = "Terminated" if sig == signal.SIGTERM else "Interrupted"
    assert last.startswith(f"Error: {word}") and "distillation checkpoint" in last and "resume" in last
    assert (out / ".genfast-incomplete").exists()
    with pytest.raises(ModelLoadError, match="never finished"):
        load(str(out))
    again = subprocess.run([sys.executable, "-m", "genfast.cli.main", *args], capture_output=True, text=True,
                           timeout=600)
    assert again.returncode == 0, again.stderr
    assert "resumed distillation at step" in again.stderr
    assert not (out / ".genfast-incomplete").exists() and not (out / ".distill").exists()
    assert json.loads((out / "recipe.json").read_text())["steps"][1]["steps"] == 400


@pytest.mark.parametrize("edit, says", [
    ({"threads": "abc"}, "threads must be a whole number"),
    ({"steps": "notalist"}, "steps must be a list of mappings"),
    ({"steps": [{"technique": "Int8WeightOnly"}]}, "do not match"),
])
def test_a_hand_edited_recipe_is_one_clear_line(edit, says, tiny_dirs, tmp_path, capsys):
    out = tmp_path / "o"
    code, _, err = run_cli(["optimize", "--model", str(tiny_dirs["llama"]), "-o", str(out), "--prune", "ffn=0.25",
                            "--max-ppl-increase", "100%", *FAST], capsys)
    assert code == 0, err
    recipe = json.loads((out / "recipe.json").read_text())
    (out / "recipe.json").write_text(json.dumps({**recipe, **edit}))
    code, _, err = run_cli(["profile", "--model", str(out), "-p", "8", "-n", "4", "--repeats", "1"], capsys)
    assert code == 1 and says in err and "unexpected" not in err, err


@pytest.mark.parametrize("sig, code, word", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
def test_profile_exits_130_on_ctrl_c_and_143_on_sigterm(sig, code, word, tiny_dirs):
    proc = _genfast("profile", "--model", str(tiny_dirs["gpt2"]), "-p", "8", "-n", "200", "--repeats", "500")
    time.sleep(8)  # past start-up, inside the measurement
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert err.strip().splitlines()[-1].startswith(f"Error: {word}")
