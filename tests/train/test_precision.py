import pytest
import torch

from amploop.errors import ConfigError
from amploop.train import precision as precision_module
from amploop.train.precision import cpu_has_native_bf16, resolve_precision

NATIVE_REASON = "the CPU has native bf16 (AVX512-BF16 or AMX)"
FALLBACK_REASON = "the CPU has no native bf16 (no AVX512-BF16 or AMX): emulated bf16 is slower than fp32"
EMULATED_NOTE = " (this CPU emulates bf16: expect it to be slower than fp32)"


@pytest.mark.parametrize("native", [True, False])
def test_auto_on_cpu_follows_native_bf16(monkeypatch, native):
    # Only the CPU feature probe is replaced, to drive both branches of the decision on one machine.
    monkeypatch.setattr(precision_module, "cpu_has_native_bf16", lambda: native)
    choice = resolve_precision("auto", "cpu")
    assert (choice.mode, choice.reason) == (("bf16", NATIVE_REASON) if native else ("fp32", FALLBACK_REASON))
    explicit = resolve_precision("bf16", "cpu")
    assert (explicit.mode, explicit.reason) == ("bf16", "bf16 requested" + ("" if native else EMULATED_NOTE))


def test_explicit_modes_on_cpu():
    assert resolve_precision("fp32", "cpu").autocast_dtype is None
    bf16 = resolve_precision("bf16", "cpu")
    assert bf16.autocast_dtype is torch.bfloat16 and not bf16.use_grad_scaler
    fp16 = resolve_precision("fp16", "cpu")
    assert fp16.use_grad_scaler and fp16.grad_scaler().is_enabled()
    with bf16.autocast():
        assert torch.nn.Linear(4, 2)(torch.randn(3, 4)).dtype is torch.bfloat16


def _cpu_flags_say_native_bf16() -> bool:
    """What the kernel reports for this CPU, read independently of amploop's probe."""
    with open("/proc/cpuinfo") as fh:
        flags = set(fh.read().split())
    return bool({"avx512_bf16", "amx_bf16"} & flags)


def test_the_probe_agrees_with_the_cpu_flags():
    assert cpu_has_native_bf16() is _cpu_flags_say_native_bf16()


def test_auto_on_this_cpu_makes_the_choice_its_flags_call_for():
    # No monkeypatching: the real probe on the real CPU; a CPU without native bf16 gets fp32 and says why.
    native = _cpu_flags_say_native_bf16()
    choice = resolve_precision("auto", "cpu")
    expected = ("bf16", torch.bfloat16, NATIVE_REASON) if native else ("fp32", None, FALLBACK_REASON)
    assert (choice.mode, choice.autocast_dtype, choice.reason) == expected
    assert choice.requested == "auto" and choice.device_type == "cpu" and not choice.use_grad_scaler


def test_explicit_bf16_on_this_cpu_warns_only_when_bf16_is_emulated():
    choice = resolve_precision("bf16", "cpu")
    assert choice.mode == "bf16"  # an explicit request is honoured on every CPU
    assert choice.reason == "bf16 requested" + ("" if _cpu_flags_say_native_bf16() else EMULATED_NOTE)


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
