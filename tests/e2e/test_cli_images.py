"""The CLI verbs on an image generator directory: profile, compare, optimize, tune."""

import json

import pytest

from genfast.cli.main import main
from genfast.images.tiny import save_tiny_image_pipeline


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    return save_tiny_image_pipeline(tmp_path_factory.mktemp("cli-image") / "digits")


def _run(args, capsys):
    code = 0
    try:
        main(args)
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_profile_prints_steps_and_images_per_second(pipeline, tmp_path, capsys):
    code, out, err = _run(["profile", "--model", str(pipeline), "-b", "1", "-b", "2", "--steps", "4", "--sampler",
                           "ddim", "--repeats", "2", "--json", "--report", str(tmp_path / "r")], capsys)
    assert code == 0
    result = json.loads(out)
    assert [c["batch_size"] for c in result["cases"]] == [1, 2] and result["steps"] == 4
    assert (tmp_path / "r" / "step_times.png").stat().st_size > 1000


def test_optimize_then_compare_with_a_budget(pipeline, tmp_path, capsys):
    out_dir = tmp_path / "fast"
    code, out, err = _run(["optimize", "--model", str(pipeline), "-o", str(out_dir), "--sampler", "ddim",
                           "--steps", "5", "--quantize", "int8-weight", "--quality-images", "10", "--batch-size", "2",
                           "--repeats", "1", "--min-class-agreement", "0", "--max-fd-increase", "1000%"], capsys)
    assert code == 0, out + err
    assert "speed-up" in out and "PASS" in out
    assert json.loads((out_dir / "recipe.json").read_text())["precision"] == "int8-weight"
    code, out, _ = _run(["compare", "--reference", str(pipeline), "--candidate", str(out_dir), "--images", "10",
                         "--min-psnr", "60", "--grid", str(tmp_path / "grid.png")], capsys)
    assert code == 3 and "FAIL: PSNR" in out and (tmp_path / "grid.png").is_file()


@pytest.mark.parametrize("args,message", [
    (["--sampler", "euler"], "Unknown sampler 'euler'"),
    (["--steps", "0"], "--steps must be in 1..50"),
    (["--backend", "tensorrt"], "Unknown engine 'tensorrt'"),
    (["--quantize", "int4-weight"], "--quantize int4-weight does not apply to image generators"),
    (["--prune", "ffn=0.25"], "--prune ffn=0.25 does not apply to image generators"),
    (["--prune", "channels=1.5"], "must be in (0, 1)"),
])
def test_impossible_image_recipes_are_one_line_errors(pipeline, tmp_path, capsys, args, message):
    code, out, err = _run(["optimize", "--model", str(pipeline), "-o", str(tmp_path / "o"), *args], capsys)
    assert code == 1 and message in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_tune_cli_writes_the_winner(pipeline, tmp_path, capsys):
    code, out, err = _run(["tune", "--model", str(pipeline), "-o", str(tmp_path / "t"), "--objective", "latency",
                           "--backend", "torch", "--quality-images", "6", "--rounds", "1", "--finalists", "1",
                           "--min-class-agreement", "0", "--max-fd-increase", "1000%", "--time-budget", "2m"], capsys)
    assert code == 0, out + err
    assert "Winner:" in out and (tmp_path / "t" / "best" / "unet").is_dir()
