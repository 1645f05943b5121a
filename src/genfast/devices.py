"""Device and dtype names as users type them, resolved and validated."""

from __future__ import annotations

import torch

from genfast.errors import BackendUnavailableError, ConfigError

DEVICES = ("auto", "cpu", "cuda", "mps", "xpu")
DTYPES = {
    "fp32": torch.float32, "float32": torch.float32,
    "fp16": torch.float16, "float16": torch.float16, "half": torch.float16,
    "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
}


def dtype_name(dtype: torch.dtype) -> str:
    """fp32 / fp16 / bf16 (the short names genfast's options use); str(dtype) for others."""
    return next((name for name, value in DTYPES.items() if value == dtype), str(dtype))


def _available(kind: str) -> bool:
    if kind == "cpu":
        return True
    if kind == "cuda":
        return torch.cuda.is_available()
    backend = getattr(torch, kind, None) or getattr(torch.backends, kind, None)
    return bool(backend is not None and getattr(backend, "is_available", lambda: False)())


def resolve_device(name: str) -> torch.device:
    """Turn ``auto``/``cpu``/``cuda[:N]``/``mps``/``xpu`` into a device that exists here."""
    kind = name.split(":")[0].strip().lower()
    if kind not in DEVICES:
        raise ConfigError(f"Unknown device {name!r}.", f"Use one of: {', '.join(DEVICES)} (or cuda:N).")
    if kind == "auto":
        for candidate in ("cuda", "xpu", "mps"):
            if _available(candidate):
                return torch.device(candidate)
        return torch.device("cpu")
    if not _available(kind):
        raise BackendUnavailableError(
            f"Device {name!r} is not available on this machine.",
            "Use --device cpu, or --device auto to pick the best one present.",
        )
    return torch.device(name)


def resolve_dtype(name: str) -> torch.dtype:
    """Turn ``fp32``/``fp16``/``bf16`` (or their long names) into a torch dtype."""
    try:
        return DTYPES[name.strip().lower()]
    except KeyError:
        raise ConfigError(f"Unknown dtype {name!r}.", "Use one of: fp32, fp16, bf16.") from None


def precision_warning(device: torch.device, dtype: torch.dtype) -> str | None:
    """Why ``dtype`` on ``device`` will likely be slower than fp32, or None when it is native."""
    if device.type != "cpu" or dtype == torch.float32:
        return None
    from genfast.profiling.hardware import cpu_supports

    if dtype == torch.bfloat16 and not (cpu_supports("avx512_bf16") or cpu_supports("amx_bf16")):
        return ("bf16 on a CPU without AVX512-BF16 or AMX runs emulated and is usually slower than fp32; "
                "keep fp32 on this machine.")
    if dtype == torch.float16 and not (cpu_supports("avx512_fp16") or cpu_supports("amx_fp16")):
        return "fp16 on a CPU without AVX512-FP16 or AMX-FP16 is usually slower than fp32; keep fp32 on this machine."
    return None


def synchronize(device: torch.device) -> None:
    """Wait for queued work on ``device`` so a timer measures it, not its launch."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "xpu":
        torch.xpu.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()
