"""TensorRT: NVIDIA GPUs only. Here: the availability check that makes its absence a clear error."""

from __future__ import annotations

import importlib.util

import torch

from genfast.backends.base import Capabilities
from genfast.errors import BackendUnavailableError


class TensorRTBackend:
    name = "tensorrt"
    capabilities = Capabilities(devices=("cuda",), dtypes=("fp32", "fp16"), extra="tensorrt")

    def check_available(self) -> None:
        if not torch.cuda.is_available():
            raise BackendUnavailableError("The tensorrt backend needs an NVIDIA GPU and none is visible to torch.",
                                          "Use --backend torch or onnxruntime on this machine.")
        if importlib.util.find_spec("tensorrt") is None:
            raise BackendUnavailableError("The tensorrt package is not installed.",
                                          "pip install 'genfast[tensorrt]' (needs an NVIDIA driver and CUDA).")

    def build(self, handle, **options):
        raise BackendUnavailableError("The TensorRT engine build is not implemented in this version of genfast.",
                                      "Use --backend torch-compile on NVIDIA GPUs for now.")
