import pytest
import torch

from genfast.devices import resolve_device, resolve_dtype
from genfast.errors import BackendUnavailableError, ConfigError, GenfastError


def test_unknown_device_lists_valid_ones():
    with pytest.raises(ConfigError, match="Unknown device 'tpu'") as info:
        resolve_device("tpu")
    assert "cpu" in info.value.hint and "auto" in info.value.hint


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_absent_cuda_is_a_clear_error():
    with pytest.raises(BackendUnavailableError, match="not available"):
        resolve_device("cuda")


def test_auto_and_cpu():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda", "mps", "xpu")


def test_dtypes():
    assert resolve_dtype("bf16") is torch.bfloat16
    assert resolve_dtype("FP32") is torch.float32
    with pytest.raises(ConfigError, match="fp32, fp16, bf16"):
        resolve_dtype("int3")


def test_error_string_has_message_and_hint():
    err = GenfastError("It broke.", "Do this.")
    assert str(err) == "It broke. Hint: Do this."


def test_low_precision_warning_follows_the_cpu_flags(monkeypatch):
    from genfast.devices import precision_warning
    from genfast.profiling import hardware

    cpu = torch.device("cpu")
    monkeypatch.setattr(hardware, "cpu_flags", lambda: {"avx2", "avx512f"})
    assert "slower than fp32" in precision_warning(cpu, torch.bfloat16)
    assert "slower than fp32" in precision_warning(cpu, torch.float16)
    assert precision_warning(cpu, torch.float32) is None
    monkeypatch.setattr(hardware, "cpu_flags", lambda: {"avx512_bf16"})
    assert precision_warning(cpu, torch.bfloat16) is None
