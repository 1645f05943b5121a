"""Every latency lever of the image demo against the original, in one run: speed and quality.

    python benchmarks/image_generators.py [--model demo-image] [--threads 2] [--rounds 3] [--images 200]

The original is the model as shipped: DDPM over its 1000 training timesteps, PyTorch fp32. Each
lever changes one thing from the row it names (a sampler and step count, then an engine or
precision on that sampler, or channel pruning healed by distillation). Speed: images/s at batch 1
and batch 16, one warm-up each, then ``--rounds`` interleaved rounds (every case once per round;
median, min-max). Quality: ``--images`` digits (labels cycling 0-9, the same seeds for every case)
against the original's images of the same labels and seeds: classifier agreement and Fréchet
distance to the held-out digits (each with a 95 % bootstrap interval), and PSNR against the same
sampler in fp32 (the precision levers' own error). Writes benchmarks/results/image_generators.{json,md}.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _results import markdown_table, write_results  # noqa: E402

FAST = ("dpm-solver", 20)
CASES = [  # (label, sampler, steps, engine, precision, prune)
    ("original", None, None, "torch", "fp32", None),
    ("DDIM x 50", "ddim", 50, "torch", "fp32", None),
    ("DPM-Solver x 20", *FAST, "torch", "fp32", None),
    ("DPM-Solver x 10", "dpm-solver", 10, "torch", "fp32", None),
    ("DPM-Solver x 20, bf16 autocast", *FAST, "torch", "bf16", None),
    ("DPM-Solver x 20, int8 dynamic", *FAST, "torch", "int8-dynamic", None),
    ("DPM-Solver x 20, int8 weights", *FAST, "torch", "int8-weight", None),
    ("DPM-Solver x 20, channels -50% + 300 distillation steps", *FAST, "torch", "fp32", 0.5),
    ("DPM-Solver x 20, ONNX Runtime fp32", *FAST, "onnxruntime", "fp32", None),
    ("DPM-Solver x 20, ONNX Runtime int8", *FAST, "onnxruntime", "int8", None),
    ("DPM-Solver x 20, OpenVINO fp32", *FAST, "openvino", "fp32", None),
    ("DPM-Solver x 20, OpenVINO bf16", *FAST, "openvino", "bf16", None),
    ("DPM-Solver x 20, OpenVINO int8 (weights + activations)", *FAST, "openvino", "int8", None),
]
BATCHES = (1, 16)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="demo-image")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--images", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from genfast.images.model import load_image_model
    from genfast.images.optimize import ImageRecipe, images_per_second, with_recipe
    from genfast.images.quality import measure, psnr
    from genfast.images.runners import build_denoiser
    from genfast.images.verify import draw, quality_set, real_images
    from genfast.profiling.hardware import hardware_facts

    original = load_image_model(args.model)
    labels, seeds = quality_set(original, args.images)
    real = real_images(original)
    built = []
    for label, sampler, steps, engine, precision, prune in CASES:
        start = time.perf_counter()
        handle = with_recipe(original, ImageRecipe(sampler=sampler, steps=steps, engine=engine,
                                                   precision=precision, prune=prune))
        denoiser = build_denoiser(handle, engine, precision, threads=args.threads)
        images = draw(handle, denoiser, labels, seeds)
        built.append((label, handle, denoiser, images, time.perf_counter() - start))
        print(f"{label}: built and drew {args.images} images in {built[-1][4]:.0f} s", flush=True)
    reference = built[0][3]
    same_sampler_fp32 = {(h.sampler, h.steps): imgs for _, h, d, imgs, _ in built
                         if d.engine == "torch" and d.precision == "fp32" and "kept_groups" not in h.recipe}

    speeds = {(label, b): [] for label, *_ in built for b in BATCHES}
    for b in BATCHES:
        for _, handle, denoiser, _, _ in built:
            images_per_second(handle, denoiser, b)  # warm-up
    for r in range(args.rounds):
        for b in BATCHES:
            for label, handle, denoiser, _, _ in built:
                speeds[(label, b)].append(images_per_second(handle, denoiser, b))
        print(f"round {r + 1}/{args.rounds} done", flush=True)

    raw, rows = [], []
    base = {b: sorted(speeds[(built[0][0], b)])[len(speeds[(built[0][0], b)]) // 2] for b in BATCHES}
    for label, handle, _, images, _ in built:
        q = measure(reference, images, labels, original.classifier, real)
        own = same_sampler_fp32.get((handle.sampler, handle.steps))
        own_psnr = float(psnr(own, images).mean()) if own is not None and own is not images else None
        entry = {"label": label, "recipe": handle.recipe, "quality": q.as_dict(),
                 "psnr_vs_same_sampler_fp32": own_psnr, "images_per_s": {str(b): speeds[(label, b)] for b in BATCHES}}
        raw.append(entry)
        cells = []
        for b in BATCHES:
            s = sorted(speeds[(label, b)])
            median = s[len(s) // 2]
            cells.append(f"{median:.2f} ({s[0]:.2f}-{s[-1]:.2f}), {median / base[b]:.1f}x")
        rows.append([label, *cells, f"{q.class_agreement.value:.2f}",
                     f"{q.candidate_label_accuracy:.1%}", f"{q.candidate_fd.value:.1f} [{q.candidate_fd.low:.1f}, "
                     f"{q.candidate_fd.high:.1f}]", f"{q.fd_increase:+.0%}",
                     "-" if own_psnr is None else f"{min(own_psnr, 99):.1f}"])
    facts = hardware_facts()
    caption = (f"`python benchmarks/image_generators.py --model {args.model} --threads {args.threads} --rounds "
               f"{args.rounds} --images {args.images}` on {facts.get('cpu', platform.processor())}, "
               f"{args.threads} threads, torch {torch.__version__}. Images/s: median (min-max) of {args.rounds} "
               "interleaved rounds, and against the original at the same batch. Quality over "
               f"{args.images} images with the original's labels and seeds: agreement of the digit classifier "
               "with the original's image, share recognised as the requested digit, Fréchet distance (classifier "
               f"features) to the {len(real)} held-out digits with its bootstrap 95 % interval and its change "
               "against the original's, and PSNR (dB) against the same sampler in PyTorch fp32.")
    headers = ["lever", "images/s, batch 1", "images/s, batch 16", "class agreement", "recognised",
               "Fréchet distance", "FD change", "PSNR vs same sampler fp32"]
    write_results("image_generators", {"machine": facts, "args": vars(args), "cases": raw}, caption,
                  markdown_table(headers, rows))


if __name__ == "__main__":
    main()
