import json

import torch

from genfast.models.loading import load
from tests.e2e.test_cli_profile import run_cli

SMALL = ["--window", "32", "--max-windows", "8", "--prompts", "4", "--new-tokens", "8"]


def test_identical_models_pass(tiny_dirs, capsys):
    d = str(tiny_dirs["llama"])
    code, out, _ = run_cli(["compare", "--reference", d, "--candidate", d, *SMALL, "--json",
                            "--min-top1-agreement", "100%"], capsys)
    assert code == 0
    result = json.loads(out)
    assert result["budget"]["passed"] and result["top1_agreement"]["value"] == 1.0


def test_damaged_model_fails_with_exit_3(tiny_dirs, tmp_path, capsys):
    handle = load(str(tiny_dirs["llama"]))
    torch.manual_seed(0)
    with torch.no_grad():
        for p in handle.model.parameters():
            p.add_(torch.randn_like(p) * p.std())
    handle.model.save_pretrained(tmp_path)
    handle.tokenizer.save_pretrained(tmp_path)
    code, out, _ = run_cli(["compare", "--reference", str(tiny_dirs["llama"]), "--candidate", str(tmp_path),
                            *SMALL, "--min-top1-agreement", "0.95"], capsys)
    assert code == 3
    assert "FAIL" in out and "top-1 agreement" in out


def test_bad_budget_string_is_one_line(tiny_dirs, capsys):
    d = str(tiny_dirs["gpt2"])
    code, _, err = run_cli(["compare", "--candidate", d, "--reference", d, "--max-ppl-increase", "lots"], capsys)
    assert code == 1 and err.startswith("Error: --max-ppl-increase 'lots' is not a number")
