"""Image generators on a tiny random diffusers UNet: sampling, engines, quality, profile, optimize."""

import json

import pytest
import torch

from genfast.errors import ConfigError
from genfast.images.model import load_image_model
from genfast.images.runners import build_denoiser
from genfast.images.sampling import generate_images, torch_denoiser
from genfast.images.tiny import save_tiny_image_pipeline


@pytest.fixture(scope="module")
def tiny_image_dir(tmp_path_factory):
    return save_tiny_image_pipeline(tmp_path_factory.mktemp("tiny-image") / "pipeline")


@pytest.fixture()
def handle(tiny_image_dir):
    return load_image_model(str(tiny_image_dir))


def _draw(handle, denoise, labels, seeds, steps=10, sampler=None):
    return generate_images(denoise, handle.scheduler, labels, seeds, steps, (1, 8, 8), sampler)


@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "dpm-solver"])
def test_an_image_is_the_same_alone_or_in_any_batch(handle, sampler):
    """One noise generator per image, for the start and every stochastic step (DDPM's too)."""
    denoise = torch_denoiser(handle.unet)
    batch = _draw(handle, denoise, [3, 1, 4, 1], [10, 11, 12, 13], sampler=sampler)
    alone = _draw(handle, denoise, [4], [12], sampler=sampler)
    assert batch.dtype == torch.uint8 and batch.shape == (4, 1, 8, 8)
    assert (batch[2].int() - alone[0].int()).abs().max() <= 1  # batched matmuls may round differently
    assert not torch.equal(batch[0], batch[1])


def test_bad_sampling_requests_are_one_line_errors(handle):
    denoise = torch_denoiser(handle.unet)
    with pytest.raises(ConfigError, match="Unknown sampler 'euler'.*ddpm, ddim, dpm-solver"):
        _draw(handle, denoise, [1], [0], sampler="euler")
    with pytest.raises(ConfigError, match="60 steps exceed the 50"):
        _draw(handle, denoise, [1], [0], steps=60)


@pytest.mark.parametrize("engine", ["onnxruntime", "openvino"])
def test_exported_unet_draws_the_images_pytorch_draws(handle, engine):
    pytest.importorskip(engine)
    reference = _draw(handle, torch_denoiser(handle.unet), [0, 5], [1, 2], sampler="ddim")
    built = build_denoiser(handle, engine, "fp32", threads=1)
    assert (_draw(handle, built.denoise, [0, 5], [1, 2], sampler="ddim").int() - reference.int()).abs().max() <= 2


@pytest.mark.parametrize("engine,precision,min_psnr", [
    ("torch", "int8-dynamic", 35), ("torch", "int8-weight", 35), ("torch", "bf16", 30), ("onnxruntime", "int8", 28),
    ("openvino", "bf16", 30),
    ("openvino", "int8", 15),  # activations too, at ranges calibrated once (random weights: wide ranges)
])
def test_reduced_precisions_stay_close_to_fp32(handle, engine, precision, min_psnr):
    from genfast.images.quality import psnr

    pytest.importorskip("onnxruntime" if engine == "onnxruntime" else "torch")
    if engine == "openvino":
        pytest.importorskip("nncf")
    reference = _draw(handle, torch_denoiser(handle.unet), [0, 5, 7], [1, 2, 3], sampler="ddim")
    built = build_denoiser(handle, engine, precision, threads=1)
    assert psnr(reference, _draw(handle, built.denoise, [0, 5, 7], [1, 2, 3], sampler="ddim")).mean() > min_psnr


def test_int8_weights_store_every_linear_and_conv_in_a_quarter_of_the_bytes(handle):
    from genfast.images.runners import quantized_unet

    unet = quantized_unet(handle.unet, "int8-weight")
    assert not any(type(m) in (torch.nn.Conv2d, torch.nn.Linear) for m in unet.modules())
    assert any(type(m) is torch.nn.Conv2d for m in handle.unet.modules())  # the original is untouched
    stored = sum(t.numel() * t.element_size() for t in unet.state_dict().values())
    assert stored < 0.4 * sum(p.numel() * 4 for p in handle.unet.parameters())


def test_unknown_engine_and_precision_are_refused(handle):
    with pytest.raises(ConfigError, match="Unknown engine 'tensorrt'"):
        build_denoiser(handle, "tensorrt")
    with pytest.raises(ConfigError, match="onnxruntime does not run image UNets in int4"):
        build_denoiser(handle, "onnxruntime", "int4")


def test_quality_figures_on_known_cases():
    import numpy as np

    from genfast.images.quality import PSNR_CAP_DB, frechet_distance, psnr, ssim

    images = torch.randint(0, 256, (6, 1, 16, 16), generator=torch.Generator().manual_seed(0)).to(torch.uint8)
    assert torch.all(psnr(images, images) == PSNR_CAP_DB)
    torch.testing.assert_close(ssim(images, images), torch.ones(6))
    noisy = (images.int() + 20).clamp(0, 255).to(torch.uint8)
    assert 10 < psnr(images, noisy).mean() < 30 and ssim(images, noisy).mean() < 1
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2000, 4)), rng.normal(size=(2000, 4))
    assert frechet_distance(a, b) < 0.05
    assert frechet_distance(a, b + 1) == pytest.approx(4, rel=0.05)  # |mean shift|^2 over 4 dimensions


def test_budget_names_each_broken_limit():
    from genfast.images.quality import Estimate, ImageBudget, ImageQuality

    q = ImageQuality(images=10, psnr_db=Estimate(18, 17, 19), ssim=Estimate(0.5, 0.4, 0.6),
                     class_agreement=Estimate(0.8, 0.7, 0.9), reference_fd=Estimate(10, 9, 11),
                     candidate_fd=Estimate(16, 15, 17))
    assert ImageBudget(min_psnr=20).violations(q) == ["class agreement 0.800 < 0.9", "Fréchet distance +60.0% > +50%",
                                                     "PSNR 18.0 dB < 20 dB"]
    assert ImageBudget(min_class_agreement=0.5, max_fd_increase=0.75).violations(q) == []


def test_profile_splits_steps_into_unet_and_scheduler(handle):
    from genfast.images.profile import profile_images

    result = profile_images(handle, build_denoiser(handle), [1, 3], steps=7, sampler="ddim", warmup=0, repeats=2)
    assert [c["batch_size"] for c in result["cases"]] == [1, 3]
    for case in result["cases"]:
        assert len(case["step_samples_s"][0]) == 7 and case["stages_s"]["unet"]["n"] == 2
        assert case["images_per_s"] == pytest.approx(case["batch_size"] / case["e2e_s"]["median"])
        assert 0.3 < case["unet_share"] <= 1
    assert result["sampler"] == "ddim" and result["steps"] == 7 and result["memory"]["peak_rss_bytes"] > 0


def test_optimize_writes_a_pipeline_that_reloads_with_its_sampler(tiny_image_dir, tmp_path):
    from genfast.images.optimize import ImageRecipe, optimize_image
    from genfast.images.quality import ImageBudget

    out = tmp_path / "fast"
    report = optimize_image(str(tiny_image_dir), ImageRecipe(sampler="ddim", steps=5, engine="onnxruntime"), out,
                            ImageBudget(min_class_agreement=0.0, max_fd_increase=None), quality_images=12,
                            batch=4, rounds=1, threads=1)
    again = load_image_model(str(out))
    assert (again.sampler, again.steps, again.recipe["engine"]) == ("ddim", 5, "onnxruntime")
    assert type(again.scheduler).__name__ == "DDIMScheduler" and (out / "unet.onnx").is_file()
    assert report["before"]["steps"] == 50 and report["after"]["steps"] == 5 and report["speedup"] > 1
    assert report["quality"]["budget"]["passed"] and (out / "samples.png").stat().st_size > 1000
    saved = json.loads((out / "report.json").read_text())
    assert saved["quality"]["quality"]["images"] == 12 and saved["quality"]["quality"]["real_images"] == 359


def test_optimize_never_writes_over_a_directory_that_is_not_an_artifact(tiny_image_dir, tmp_path):
    from genfast.images.optimize import ImageRecipe, optimize_image

    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not a genfast artifact"):
        optimize_image(str(tiny_image_dir), ImageRecipe(steps=5), tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"
    with pytest.raises(ConfigError, match="--steps must be in 1..50"):
        optimize_image(str(tiny_image_dir), ImageRecipe(steps=500), tmp_path / "new")
    assert not (tmp_path / "new").exists()


def test_tune_keeps_the_fastest_candidate_inside_the_budget_and_writes_it(tiny_image_dir, tmp_path):
    from genfast.images.quality import ImageBudget
    from genfast.images.tune import ImageTuneOptions, tune_image

    options = ImageTuneOptions(objective="throughput", batch=4, quality_images=12, rounds=1, finalists=2,
                               samplers=[("ddim", 20), ("ddim", 5)], engines=[("onnxruntime", "fp32")],
                               budget=ImageBudget(min_class_agreement=0.0, max_fd_increase=None, min_psnr=None))
    report = tune_image(str(tiny_image_dir), tmp_path / "tuned", options)
    labels = [t["label"] for t in report["trials"]]
    assert labels == ["ddim x 5 steps, torch fp32", "ddim x 20 steps, torch fp32",
                      "ddim x 5 steps, onnxruntime fp32", "ddim x 20 steps, onnxruntime fp32"]
    winner = report["winner"]
    finalists = [t for t in report["trials"] if "final" in t]
    assert winner["images_per_s"]["median"] == max(t["final"]["median"] for t in finalists)
    best = load_image_model(winner["artifact"])
    assert best.steps == winner["recipe"]["steps"] and best.recipe["engine"] == winner["recipe"]["engine"]
    assert (tmp_path / "tuned" / "trials.jsonl").read_text().count("\n") == 4


def test_tune_reports_no_winner_when_nothing_fits_the_budget(tiny_image_dir, tmp_path):
    from genfast.images.quality import ImageBudget
    from genfast.images.tune import ImageTuneOptions, answer_line, tune_image

    options = ImageTuneOptions(batch=2, quality_images=6, samplers=[("ddim", 5)], engines=[],
                               budget=ImageBudget(min_psnr=99))  # only the original itself draws these
    report = tune_image(str(tiny_image_dir), tmp_path / "tuned", options)
    assert report["winner"] is None and "No candidate" in answer_line(report)
    assert report["trials"][0]["failures"][0].startswith("PSNR")


def test_channel_pruning_shrinks_resnet_blocks_heals_and_reloads(tiny_image_dir, tmp_path):
    """Whole GroupNorm groups go, so the pruned UNet (before healing) still runs; distillation lowers
    its distance to the original; the artifact reloads with its pruned shapes."""
    from genfast.images.optimize import ImageRecipe, optimize_image
    from genfast.images.prune import distill_unet, prune_unet, trajectory_inputs
    from genfast.images.quality import ImageBudget

    original = load_image_model(str(tiny_image_dir))
    inputs = trajectory_inputs(original, count=64, steps=5, batch=8)
    unet, kept = prune_unet(original, 0.5, inputs)
    assert set(kept.values()) == {2}  # 4 groups per block, half kept
    assert sum(p.numel() for p in unet.parameters()) < 0.8 * sum(p.numel() for p in original.unet.parameters())
    x, t, labels = inputs[-1]

    def gap() -> float:
        with torch.no_grad():
            return (unet(x, t, class_labels=labels).sample - original.unet(x, t, class_labels=labels).sample
                    ).pow(2).mean().item()

    before = gap()
    losses = distill_unet(unet, original.unet, inputs, steps=60, lr=1e-3)
    assert losses[-1] < losses[0] and gap() < before

    out = tmp_path / "pruned"
    optimize_image(str(tiny_image_dir), ImageRecipe(sampler="ddim", steps=5, prune=0.5, distill_steps=20), out,
                   ImageBudget(min_class_agreement=0.0, max_fd_increase=None), quality_images=8, batch=2, rounds=1)
    again = load_image_model(str(out))
    assert again.recipe["kept_groups"] == kept
    assert sum(p.numel() for p in again.unet.parameters()) == sum(p.numel() for p in unet.parameters())
    with torch.no_grad():
        again.unet(x, t, class_labels=labels)


def test_an_unfinished_output_is_never_loaded(tiny_image_dir, tmp_path):
    import shutil

    from genfast.errors import ModelLoadError

    half = tmp_path / "half"
    shutil.copytree(tiny_image_dir, half)
    (half / ".genfast-incomplete").write_text("")
    with pytest.raises(ModelLoadError, match="never finished"):
        load_image_model(str(half))
