import json
import subprocess
import sys

import pytest

from genfast.cli.main import main


def run_cli(args, capsys):
    with pytest.raises(SystemExit) as info:
        main(args)
        raise SystemExit(0)
    out = capsys.readouterr()
    return info.value.code, out.out, out.err


def test_profile_json(tiny_dirs, capsys):
    code, out, _ = run_cli(["profile", "--model", str(tiny_dirs["llama"]), "-p", "8", "-n", "4",
                            "--repeats", "2", "--warmup", "0", "--json"], capsys)
    assert code == 0
    result = json.loads(out)
    assert result["model"]["architecture"] == "LlamaForCausalLM"
    assert result["cases"][0]["itl_s"]["n"] == 2 * 3


def test_profile_table_and_report(tiny_dirs, tmp_path, capsys):
    code, out, err = run_cli(["profile", "--model", str(tiny_dirs["gpt2"]), "-p", "8", "-b", "1", "-b", "2",
                              "-n", "4", "--repeats", "2", "--threads", "1", "--report", str(tmp_path)], capsys)
    assert code == 0
    assert "TTFT" in out and "decode_forward" in out and "roofline" in out
    for name in ("report.md", "profile.json", "stages.png", "itl.png"):
        assert (tmp_path / name).stat().st_size > 0
    report = (tmp_path / "report.md").read_text()
    assert "| prompt | batch |" in report and "GPT2LMHeadModel" in report


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "/definitely/not/here"], "No model directory"),
        (["-p", "250"], "exceeds the model's context of 256"),
        (["-n", "0"], "output length must be at least 1"),
        (["-b", "-2"], "batch size must be at least 1"),
        (["-p", "0"], "prompt length must be at least 1"),
        (["--device", "tpu"], "Unknown device"),
        (["--dtype", "int3"], "Unknown dtype"),
        (["--threads", "0"], "--threads must be at least 1"),
        (["--precision", "int8"], "The torch backend has no precision 'int8'"),
    ],
)
def test_bad_input_is_one_line_and_exit_1(tiny_dirs, capsys, args, message):
    if "--model" not in args:
        args = ["--model", str(tiny_dirs["gpt2"]), *args]
    code, _, err = run_cli(["profile", *args], capsys)
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "Hint: " in lines[0]
    assert message in lines[0]


def test_not_a_causal_lm_directory(tmp_path, capsys):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    code, _, err = run_cli(["profile", "--model", str(tmp_path)], capsys)
    assert code == 1 and "not a causal language model" in err


def test_generic_module_from_file(tmp_path, capsys):
    factory = tmp_path / "gen.py"
    factory.write_text(
        "import torch\nfrom genfast.models.handle import ModuleSpec\n"
        "def build():\n"
        "    return ModuleSpec(module=torch.nn.Linear(4, 4), raw_input=torch.ones(1, 4), name='lin')\n"
    )
    code, out, _ = run_cli(["profile", "--module", f"{factory}:build", "--repeats", "3"], capsys)
    assert code == 0 and "forward" in out and "end-to-end" in out
    code, _, err = run_cli(["profile", "--module", f"{factory}:nothing"], capsys)
    assert code == 1 and "has no function 'nothing'" in err


def test_console_script_prints_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "genfast.cli.main", "profile", "--model", str(tmp_path / "x")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("Error: No model directory")


def test_debug_shows_the_traceback(tmp_path, capsys):
    code, _, err = run_cli(["profile", "--debug", "--model", str(tmp_path / "x")], capsys)
    assert code == 1 and "Traceback" in err
