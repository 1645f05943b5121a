"""The bundled image demo: it loads offline, it learned to draw the digit asked for, and it serves."""

import base64
import io
import json
import time

import numpy as np
import pytest
import torch

from genfast import envs
from genfast.images.model import load_image_model
from genfast.images.quality import classifier_outputs
from genfast.images.runners import build_denoiser
from genfast.images.verify import draw, quality_set, real_images


@pytest.fixture(scope="module")
def demo():
    return load_image_model("demo-image")


def test_it_is_a_plain_diffusers_pipeline_of_a_few_mb(demo):
    from diffusers import DDPMScheduler, UNet2DModel

    path = envs.demo_image_dir()
    unet = UNet2DModel.from_pretrained(path / "unet")
    assert unet.config.num_class_embeds == 10 and unet.config.sample_size == 16
    assert isinstance(DDPMScheduler.from_pretrained(path / "scheduler"), DDPMScheduler)
    assert sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) < 10 * 2**20


def test_the_classifier_recognises_held_out_digits(demo):
    from genfast.images.digits import load_digits_split

    split = load_digits_split(16)
    with torch.no_grad():
        accuracy = (demo.classifier(split.heldout_images).argmax(-1) == split.heldout_labels).float().mean()
    record = json.loads((envs.demo_image_dir() / "training.json").read_text())
    assert accuracy > 0.9 and accuracy == pytest.approx(record["classifier_heldout_accuracy"], abs=1e-3)


def test_samples_are_the_digit_asked_for_and_near_the_real_ones(demo):
    """40 fresh samples (a fast sampler) recognised far above chance; the recorded evaluation of 200
    samples with the model's own sampler says the same, with a Fréchet distance close to real
    digits' and far from noise's."""
    from genfast.images.optimize import ImageRecipe, with_recipe

    fast = with_recipe(demo, ImageRecipe(sampler="dpm-solver", steps=20))
    labels, seeds = quality_set(demo, 40, seed=7)
    images = draw(fast, build_denoiser(fast), labels, seeds)
    classes, _ = classifier_outputs(demo.classifier, images)
    assert (classes == labels).mean() > 0.8
    evaluation = json.loads((envs.demo_image_dir() / "training.json").read_text())["evaluation"]
    fd = evaluation["frechet_distance_to_heldout"]
    assert evaluation["recognised_as_requested"] > 0.8 and evaluation["steps"] == 1000
    assert fd["generated"]["value"] < fd["noise"]["value"] / 20
    assert len(real_images(demo)) == evaluation["heldout_images"]


def test_the_server_draws_the_requested_digit(demo):
    """With the model's own sampler (DDPM, 1000 steps), through the images API."""
    from fastapi.testclient import TestClient
    from PIL import Image

    from genfast.serving.server import ServeConfig, build_server

    api = build_server(ServeConfig(model="demo-image"), eager=False, warmup=False)
    with TestClient(api.build()) as client:
        for _ in range(600):
            if client.get("/health").status_code == 200:
                break
            time.sleep(0.05)
        r = client.post("/v1/images/generations", json={"prompt": "seven", "n": 2, "seed": 3})
    assert r.status_code == 200, r.text
    images = torch.stack([torch.from_numpy(np.array(Image.open(io.BytesIO(base64.b64decode(d["b64_json"])))))[None]
                          for d in r.json()["data"]])
    classes, _ = classifier_outputs(demo.classifier, images)
    assert list(classes) == [7, 7]


def test_every_verb_runs_on_the_demo(tmp_path, capsys):
    """profile, optimize, compare and tune from the CLI on demo-image itself (small settings)."""
    from genfast.cli.main import main

    def run(*args: str) -> str:
        try:
            main(list(args))
        except SystemExit as exc:
            assert exc.code == 0, capsys.readouterr()
        return capsys.readouterr().out

    assert "UNet share" in run("profile", "--model", "demo-image", "--steps", "5", "--repeats", "1")
    out = run("optimize", "--model", "demo-image", "-o", str(tmp_path / "fast"), "--sampler", "dpm-solver",
              "--steps", "10", "--quality-images", "20", "--batch-size", "4", "--repeats", "1")
    assert "PASS" in out and "speed-up" in out
    assert "PASS" in run("compare", "--reference", "demo-image", "--candidate", str(tmp_path / "fast"),
                         "--images", "20")
    out = run("tune", "--model", "demo-image", "-o", str(tmp_path / "tuned"), "--backend", "onnxruntime",
              "--quality-images", "20", "--rounds", "1", "--finalists", "1", "--batch-size", "4")
    assert "Winner:" in out and load_image_model(str(tmp_path / "tuned" / "best")).steps <= 25
