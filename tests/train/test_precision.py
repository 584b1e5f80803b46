import pytest
import torch

from amploop.errors import ConfigError
from amploop.train import precision as precision_module
from amploop.train.precision import cpu_has_native_bf16, resolve_precision


@pytest.mark.parametrize("native", [True, False])
def test_auto_on_cpu_follows_native_bf16(monkeypatch, native):
    # The CPU feature probe is replaced to cover both kinds of CPU on this one machine.
    monkeypatch.setattr(precision_module, "cpu_has_native_bf16", lambda: native)
    choice = resolve_precision("auto", "cpu")
    assert choice.mode == ("bf16" if native else "fp32")
    assert ("native bf16" in choice.reason) if native else ("no native bf16" in choice.reason)


def test_explicit_modes_on_cpu():
    assert resolve_precision("fp32", "cpu").autocast_dtype is None
    bf16 = resolve_precision("bf16", "cpu")
    assert bf16.autocast_dtype is torch.bfloat16 and not bf16.use_grad_scaler
    fp16 = resolve_precision("fp16", "cpu")
    assert fp16.use_grad_scaler and fp16.grad_scaler().is_enabled()
    with bf16.autocast():
        assert torch.nn.Linear(4, 2)(torch.randn(3, 4)).dtype is torch.bfloat16


def test_auto_agrees_with_the_cpu_flags():
    with open("/proc/cpuinfo") as fh:
        flags = fh.read()
    if "avx512_bf16" in flags or "amx_bf16" in flags:
        assert cpu_has_native_bf16()


@pytest.mark.parametrize(
    ("requested", "message"),
    [
        ("fp8", "unknown precision 'fp8'; valid: auto, fp32, tf32, bf16, fp16"),
        ("tf32", "tf32 exists only on CUDA GPUs"),
    ],
)
def test_bad_precisions(requested, message):
    with pytest.raises(ConfigError, match=message):
        resolve_precision(requested, "cpu")


def test_choice_is_recorded_as_json():
    d = resolve_precision("fp16", "cpu").to_dict()
    assert d == {
        "requested": "fp16",
        "mode": "fp16",
        "device_type": "cpu",
        "reason": "fp16 requested",
        "use_grad_scaler": True,
    }
