"""The UNet as a denoiser on each engine: PyTorch (fp32, bf16, int8), ONNX Runtime, OpenVINO.

ONNX Runtime and OpenVINO run the UNet exported once to ONNX (batch dynamic); the scheduler stays
in Python, as in Optimum's ``ORTStableDiffusionPipeline`` / ``OVStableDiffusionPipeline``.
"""

from __future__ import annotations

import copy
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from genfast.errors import BackendUnavailableError, ConfigError
from genfast.images.model import ImageModelHandle
from genfast.images.sampling import Denoiser, torch_denoiser

ENGINES = {
    "torch": ("fp32", "bf16", "int8-dynamic", "int8-weight"),
    "onnxruntime": ("fp32", "int8"),
    "openvino": ("fp32", "bf16", "int8"),
}
"""Engine -> the precisions genfast runs the UNet in on it."""


@dataclass
class BuiltDenoiser:
    """A denoiser and what it is, kept alive with the files it needs."""

    denoise: Denoiser
    engine: str
    precision: str
    files: object | None = None
    """A TemporaryDirectory (or None) holding the exported graph for as long as this lives."""
    onnx_path: Path | None = None


class _UNetStep(torch.nn.Module):
    """(sample, timestep, class_labels) -> predicted noise: the graph ONNX exports."""

    def __init__(self, unet: torch.nn.Module) -> None:
        super().__init__()
        self.unet = unet

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor, class_labels: torch.Tensor) -> torch.Tensor:
        return self.unet(sample, timestep, class_labels=class_labels).sample


def export_unet_onnx(handle: ImageModelHandle, path: Path) -> Path:
    """Write the UNet as ONNX (dynamic batch) to ``path``."""
    from genfast.runtime.onnx_export import ExportError

    s = handle.image_size
    example = (torch.randn(2, handle.channels, s, s), torch.tensor([10, 10]), torch.tensor([1, 2]))
    names = ["sample", "timestep", "class_labels"]
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(_UNetStep(handle.unet).eval(), example, str(path), input_names=names,
                              output_names=["noise"], dynamic_axes={n: {0: "batch"} for n in [*names, "noise"]},
                              dynamo=False, opset_version=17)
    except Exception as exc:  # noqa: BLE001 - exporters fail in many ways; name the first line
        path.unlink(missing_ok=True)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"ONNX export of the UNet failed: {first}") from exc
    return path


def _labels(labels: torch.Tensor | None, n: int) -> np.ndarray:
    return (labels if labels is not None else torch.zeros(n, dtype=torch.long)).numpy()


def _ort_denoiser(path: Path, threads: int | None) -> Denoiser:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def denoise(x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        feeds = {"sample": x.numpy(), "timestep": t.long().numpy(), "class_labels": _labels(labels, len(x))}
        return torch.from_numpy(session.run(None, feeds)[0])

    return denoise


def _ov_denoiser(path: Path, precision: str, threads: int | None, handle: ImageModelHandle) -> Denoiser:
    import openvino as ov

    core = ov.Core()
    model = core.read_model(str(path))
    if precision == "bf16" and "BF16" not in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        raise BackendUnavailableError("This CPU does not compute bf16, so OpenVINO bf16 would be emulated.",
                                      "Use fp32 or int8 here.")
    if precision == "int8":
        model = _ov_quantize(model, handle)
    config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32"}
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    compiled = core.compile_model(model, "CPU", config)
    request = compiled.create_infer_request()

    def denoise(x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        feeds = {"sample": x.numpy(), "timestep": t.long().numpy(), "class_labels": _labels(labels, len(x))}
        return torch.from_numpy(np.array(request.infer(feeds)[compiled.output(0)]))

    return denoise


def calibration_inputs(handle: ImageModelHandle, count: int = 64, seed: int = 0) -> list[dict[str, np.ndarray]]:
    """UNet inputs as sampling meets them: noised images at random timesteps, random labels."""
    gen = torch.Generator().manual_seed(seed)
    s, steps = handle.image_size, handle.scheduler.config.num_train_timesteps
    alphas = handle.scheduler.alphas_cumprod
    inputs = []
    for _ in range(count):
        t = torch.randint(0, steps, (1,), generator=gen)
        x0 = torch.rand(1, handle.channels, s, s, generator=gen) * 2 - 1
        x = alphas[t].sqrt() * x0 + (1 - alphas[t]).sqrt() * torch.randn(x0.shape, generator=gen)
        labels = torch.randint(0, handle.num_classes or 1, (1,), generator=gen)
        inputs.append({"sample": x.float().numpy(), "timestep": t.numpy(), "class_labels": labels.numpy()})
    return inputs


def _ov_quantize(model, handle: ImageModelHandle):
    """NNCF post-training int8 (weights and activations) calibrated on sampling-like inputs."""
    import contextlib
    import io
    import logging

    import nncf

    nncf.set_log_level(logging.ERROR)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return nncf.quantize(model, nncf.Dataset(calibration_inputs(handle)), subset_size=64,
                             model_type=nncf.ModelType.TRANSFORMER)


def build_denoiser(handle: ImageModelHandle, engine: str = "torch", precision: str = "fp32",
                   threads: int | None = None, export_dir: Path | None = None) -> BuiltDenoiser:
    """``handle``'s UNet as a denoiser on ``engine`` at ``precision`` (the handle is not modified)."""
    if engine not in ENGINES:
        raise ConfigError(f"Unknown engine {engine!r} for image generators.", f"Use one of: {', '.join(ENGINES)}.")
    if precision not in ENGINES[engine]:
        raise ConfigError(f"{engine} does not run image UNets in {precision}.",
                          f"Use one of: {', '.join(ENGINES[engine])}.")
    if engine == "torch":
        return BuiltDenoiser(_torch_denoiser(handle, precision), engine, precision)
    from genfast.backends.base import require_modules

    require_modules(engine, ("onnx", engine) if engine == "onnxruntime" else ("onnx", "openvino", "nncf"),
                    "onnx" if engine == "onnxruntime" else "openvino")
    files = None
    if export_dir is None:
        files = tempfile.TemporaryDirectory(prefix="genfast-unet-")
        export_dir = Path(files.name)
    path = export_dir / "unet.onnx"
    if not path.is_file():
        export_unet_onnx(handle, path)
    if engine == "onnxruntime":
        if precision == "int8":
            from genfast.backends.onnxruntime import _quantize_dynamic

            int8_path = export_dir / "unet.int8.onnx"
            if not int8_path.is_file():
                _quantize_dynamic(path, int8_path)
            path = int8_path
        return BuiltDenoiser(_ort_denoiser(path, threads), engine, precision, files, path)
    return BuiltDenoiser(_ov_denoiser(path, precision, threads, handle), engine, precision, files, path)


class Int8WeightConv2d(torch.nn.Module):
    """A Conv2d whose weight is stored as int8 with one fp32 scale per output channel (a quarter of
    the bytes), dequantized for each call: smaller, not faster (PyTorch has no int8 conv on CPU)."""

    def __init__(self, conv: torch.nn.Conv2d) -> None:
        super().__init__()
        weight = conv.weight.detach()
        scale = weight.abs().amax(dim=(1, 2, 3)).clamp_min(1e-12) / 127
        self.register_buffer("qweight", torch.round(weight / scale[:, None, None, None]).to(torch.int8))
        self.register_buffer("scale", scale)
        self.bias = None if conv.bias is None else torch.nn.Parameter(conv.bias.detach().clone(), requires_grad=False)
        self.stride, self.padding, self.dilation, self.groups = conv.stride, conv.padding, conv.dilation, conv.groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.qweight.to(x.dtype) * self.scale[:, None, None, None].to(x.dtype)
        return torch.nn.functional.conv2d(x, weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


def _quantize_convs(unet: torch.nn.Module) -> None:
    convs = [(name, m) for name, m in unet.named_modules() if type(m) is torch.nn.Conv2d]
    for name, conv in convs:
        parent, _, child = name.rpartition(".")
        setattr(unet.get_submodule(parent) if parent else unet, child, Int8WeightConv2d(conv))


def _torch_denoiser(handle: ImageModelHandle, precision: str) -> Denoiser:
    if precision == "bf16":
        from genfast.devices import precision_warning

        warning = precision_warning(torch.device("cpu"), torch.bfloat16)
        if warning:
            warnings.warn(warning, stacklevel=3)
        return torch_denoiser(handle.unet, torch.bfloat16)
    if precision == "fp32":
        return torch_denoiser(handle.unet)
    return torch_denoiser(quantized_unet(handle.unet, precision))


def quantized_unet(unet: torch.nn.Module, precision: str) -> torch.nn.Module:
    """A quantized copy of ``unet``: ``int8-dynamic`` (int8 matmuls for the Linear layers; PyTorch has
    no dynamic int8 convolution) or ``int8-weight`` (Linear layers through genfast's int8 GEMV,
    convolutions stored as int8)."""
    from genfast.compress import compress_
    from genfast.compress.quantize import DynamicInt8, Int8WeightOnly

    unet = copy.deepcopy(unet)
    if precision == "int8-dynamic":
        compress_(unet, DynamicInt8(include_lm_head=False))
    else:
        compress_(unet, Int8WeightOnly(include_lm_head=False))
        _quantize_convs(unet)
    return unet
