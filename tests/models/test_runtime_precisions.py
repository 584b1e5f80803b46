"""Inference precisions and runtimes: ONNX Runtime fp32 and int8 against torch, parity, precision choice."""

from __future__ import annotations

import dataclasses
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import onnx
import pandas as pd
import pytest
import torch
from torch import nn

from amploop.config import AmploopConfig, ModelConfig, TrainConfig
from amploop.data import Dataset, load_builtin
from amploop.errors import AmploopError, ConfigError, SchemaError
from amploop.models import runtime as runtime_module
from amploop.models.bundle import ModelBundle
from amploop.models.onnx import onnx_graph, quantize_int8
from amploop.models.runtime import Predictor, check_parity, choose_inference_precision
from amploop.models.zoo import ModelSpec, build_model
from amploop.train.fit import bundle_from_fit, fit
from amploop.train.precision import cpu_has_native_bf16


def _trained(dataset: Dataset, architecture: str, **train: object) -> tuple[ModelBundle, pd.DataFrame, dict]:
    """A briefly trained bundle, read back from its files as the registry serves it, and its test rows."""
    settings = TrainConfig(**{"epochs": 1, "precision": "fp32", "seed": 0, **train})
    result = fit(dataset, AmploopConfig(model=ModelConfig(architecture=architecture), train=settings))
    bundle = ModelBundle.from_files(bundle_from_fit(result).to_files())
    test = result.splits.test
    return bundle, test.table.drop(columns=[bundle.target]).reset_index(drop=True), dict(test.arrays)


@pytest.fixture(scope="module")
def adult() -> tuple[ModelBundle, pd.DataFrame, dict]:
    bundle, table, arrays = _trained(load_builtin("adult"), "mlp")
    return bundle, table.head(400), arrays


@pytest.fixture(scope="module")
def mnist() -> tuple[ModelBundle, pd.DataFrame, dict]:
    bundle, table, arrays = _trained(load_builtin("mnist5k"), "cnn", batch_size=128)
    return bundle, table.head(300), {k: v[:300] for k, v in arrays.items()}


@pytest.mark.parametrize("model", ["adult", "mnist"])
def test_onnx_fp32_serves_what_torch_serves(model, request):
    bundle, table, arrays = request.getfixturevalue(model)
    torch_fp32 = Predictor(bundle)
    onnx_fp32 = Predictor(bundle, runtime="onnx", reference="m:1")
    assert onnx_fp32.describe() == {"precision": "fp32", "runtime": "onnx", "device": "cpu", "reference": "m:1"}
    expected = torch_fp32.predict_outputs(table, arrays)
    got = onnx_fp32.predict_outputs(table, arrays)
    assert got.shape == expected.shape == (len(table), len(bundle.classes))
    assert np.max(np.abs(got - expected)) <= 1e-4
    # the same temperature handling: uncalibrated probabilities and raw logits match too
    assert np.max(np.abs(onnx_fp32.logits(table, arrays) - torch_fp32.logits(table, arrays))) <= 1e-4
    uncalibrated = onnx_fp32.predict_outputs(table, arrays, calibrated=False)
    assert np.max(np.abs(uncalibrated - torch_fp32.predict_outputs(table, arrays, calibrated=False))) <= 1e-4
    assert onnx_fp32.predict(table, arrays) == torch_fp32.predict(table, arrays)


def test_the_onnx_runtime_checks_the_schema_and_batches_rows(adult):
    bundle, table, _ = adult
    predictor = Predictor(bundle, runtime="onnx", batch_size=7)  # 400 rows in 58 batches, the last of 1
    assert np.max(np.abs(predictor.predict_outputs(table) - Predictor(bundle).predict_outputs(table))) <= 1e-4
    with pytest.raises(SchemaError, match="missing columns: age"):
        predictor.predict(table.drop(columns=["age"]))
    assert predictor.predict_outputs(table.head(0)).shape == (0, 2)


@pytest.mark.parametrize("model", ["adult", "mnist"])
def test_int8_runs_on_onnx_runtime_and_agrees_with_fp32(model, request):
    bundle, table, arrays = request.getfixturevalue(model)
    int8 = Predictor(bundle, precision="int8")  # asked of the torch runtime: int8 always runs on ONNX Runtime
    assert (int8.runtime, int8.precision, int8.model) == ("onnx", "int8", None)
    check = check_parity(int8, Predictor(bundle), table, arrays)
    assert (check.precision, check.runtime, check.rows) == ("int8", "onnx", len(table))
    assert check.agreement >= 0.97 and check.passed(0.97)
    assert 0 < check.max_probability_difference < 0.1  # quantized (not fp32 again), and close


def test_int8_quantizes_the_matrix_multiplications_only():
    spec = ModelSpec(image_shape=(1, 28, 28), n_outputs=10)
    bundle = ModelBundle("cnn", {}, spec, "classification", "y", [str(i) for i in range(10)], {}, "{}", {})
    bundle = dataclasses.replace(bundle, weights=build_model("cnn", spec).state_dict())
    graph, difference = onnx_graph(bundle)
    quantized = quantize_int8(graph)
    ops = {node.op_type for node in onnx.load_from_string(quantized).graph.node}
    assert difference <= 1e-4 and "MatMulInteger" in ops and "Gemm" not in ops
    assert "Conv" in ops and "ConvInteger" not in ops  # ConvInteger made the CNN slower, not faster
    assert len(quantized) < 0.5 * len(graph)  # the linear weights, most of the bytes, now one byte each


def test_int8_never_calls_torch_ao_quantization(adult):
    """``import torch`` loads torch.ao.quantization itself, so this watches calls, not imports."""
    bundle, table, _ = adult
    marker = os.sep.join(("torch", "ao", ""))
    called: list[str] = []

    def watch(frame, event, arg):
        if event == "call" and marker in frame.f_code.co_filename:
            called.append(f"{frame.f_code.co_filename}:{frame.f_code.co_name}")

    sys.setprofile(watch)
    try:
        predictor = Predictor(bundle, precision="int8")
        predictor.predict(table.head(20))
    finally:
        sys.setprofile(None)
    assert predictor.runtime == "onnx" and called == []


def _favouring_class_one(bundle: ModelBundle, shift: float) -> ModelBundle:
    """The bundle with ``shift`` added to the output layer's bias for class 1."""
    weights = dict(bundle.weights)
    output_bias = [name for name in bundle.build().state_dict() if name.endswith("bias")][-1]  # model order
    weights[output_bias] = weights[output_bias] + torch.tensor([0.0, shift])
    return dataclasses.replace(bundle, weights=weights)


def test_check_parity_tells_a_changed_model_from_the_same_one(adult):
    bundle, table, _ = adult
    baseline = Predictor(bundle)
    same = check_parity(Predictor(bundle), baseline, table)
    # the last bit of a float32 matmul may depend on where its arrays sit in memory (MKL, oneDNN)
    assert same.to_dict() == {
        "precision": "fp32",
        "runtime": "torch",
        "rows": 400,
        "agreement": 1.0,
        "max_probability_difference": pytest.approx(0.0, abs=1e-6),
    }
    assert same.passed(1.0)
    # class 1 gains `shift` in logit: exactly the rows whose margin for class 0 is below it change answer
    logits = baseline.logits(table)
    margin = logits[:, 0] - logits[:, 1]
    shift = float(np.quantile(margin[margin > 0], 0.3))
    changed = check_parity(Predictor(_favouring_class_one(bundle, shift), runtime="onnx"), baseline, table)
    flipped = float(np.mean((margin > 0) & (margin < shift)))
    assert changed.runtime == "onnx" and 0 < flipped < 0.5
    assert changed.agreement == pytest.approx(1 - flipped, abs=1 / 400)  # a row on the boundary may go either way
    assert not changed.passed(1 - flipped / 2) and changed.max_probability_difference > 0


class Shifted(nn.Module):
    """A user's own regression model: ``numeric[:, 0] + bias``, weights set exactly below."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(2, 1)

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.linear(inputs["numeric"])


@pytest.fixture(scope="module")
def regression() -> tuple[ModelBundle, pd.DataFrame]:
    rng = np.random.default_rng(5)
    table = pd.DataFrame({"a": rng.normal(size=300), "b": rng.normal(size=300)})
    table["y"] = table["a"] + 0.1 * rng.normal(size=300)
    untrained = AmploopConfig(train=TrainConfig(epochs=1, max_steps=1, learning_rate=1e-9, precision="fp32"))
    result = fit(Dataset.from_table("shifted", table, target="y"), untrained, model=Shifted())
    assert result.task == "regression"
    return bundle_from_fit(result), table.drop(columns=["y"])


def _with_bias(bundle: ModelBundle, bias: float) -> ModelBundle:
    weights = {"linear.weight": torch.tensor([[1.0, 0.0]]), "linear.bias": torch.tensor([bias])}
    return dataclasses.replace(bundle, weights=weights)


@pytest.mark.parametrize(
    ("bias", "shift", "agreement"),
    [
        (50.0, 0.3, 1.0),  # values near 50: 1% of each is about 0.5, so 0.3 agrees on every row
        (50.0, 0.8, 0.0),  # and 0.8 on none
        (0.0, 0.005, 1.0),  # values near 0: 1% of their spread (about 1) is the floor, so 0.005 agrees
    ],
)
def test_regression_parity_is_agreement_within_one_percent(regression, bias, shift, agreement):
    bundle, table = regression
    baseline = Predictor(_with_bias(bundle, bias), module=Shifted())
    candidate = Predictor(_with_bias(bundle, bias + shift), runtime="onnx", module=Shifted())
    check = check_parity(candidate, baseline, table)
    assert check.agreement == agreement
    assert check.max_probability_difference == pytest.approx(shift, abs=1e-4)


def test_one_predictor_answers_many_threads_at_once(adult):
    bundle, table, _ = adult
    parts = [table.iloc[i * 50 : (i + 1) * 50] for i in range(8)]
    for predictor in (Predictor(bundle), Predictor(bundle, precision="bf16"), Predictor(bundle, precision="int8")):
        alone = [predictor.predict_outputs(part) for part in parts]
        start = threading.Barrier(8)

        def answer(part: pd.DataFrame, predictor: Predictor = predictor, start: threading.Barrier = start):
            start.wait()
            return predictor.predict_outputs(part)

        with ThreadPoolExecutor(8) as pool:
            together = list(pool.map(answer, parts))
        # rows answered for another thread's request would differ by far more than rounding
        differences = [float(np.max(np.abs(a - b))) for a, b in zip(alone, together, strict=True)]
        assert max(differences) <= 1e-6, (predictor.describe(), differences)


def test_unsupported_runtime_requests_are_config_errors(adult):
    bundle, _, _ = adult
    with pytest.raises(ConfigError, match="valid: torch, onnx"):
        Predictor(bundle, runtime="tensorrt")
    with pytest.raises(ConfigError, match="onnx runtime runs fp32 and int8; run bf16 with runtime='torch'"):
        Predictor(bundle, precision="bf16", runtime="onnx")
    with pytest.raises(ConfigError, match="runs on the CPU; use device='cpu'"):
        Predictor(bundle, precision="int8", device="cuda")
    spec = ModelSpec(n_outputs=5, vocab_size=5, block_size=8)
    weights = build_model("gpt", spec, {"n_layer": 1, "n_head": 1, "n_embd": 8}).state_dict()
    gpt = ModelBundle(
        "gpt", {"n_layer": 1, "n_head": 1, "n_embd": 8}, spec, "classification", "y", None, {}, "{}", weights
    )
    with pytest.raises(ConfigError, match=r"gpt \(text\) models are not exported and run on the torch runtime"):
        Predictor(gpt, precision="int8")


def test_without_onnxruntime_the_error_says_what_to_install(adult, monkeypatch):
    """onnxruntime is installed here; a None entry in sys.modules makes its import fail as if it were not."""
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(AmploopError, match="pip install onnxruntime"):
        Predictor(adult[0], runtime="onnx")


def test_choose_inference_precision_on_the_cpu():
    precision, reason = choose_inference_precision("auto", "cpu")
    assert precision == "fp32" and "autocast" in reason and "bench/serve_models.py" in reason
    assert choose_inference_precision("fp32", "cpu") == ("fp32", "fp32 requested")
    assert choose_inference_precision("int8", "cpu")[0] == "int8"
    with pytest.raises(ConfigError, match="fp16 on the CPU"):
        choose_inference_precision("fp16", "cpu")
    with pytest.raises(ConfigError, match="valid: auto, fp32, bf16, fp16, int8"):
        choose_inference_precision("fp8", "cpu")
    if cpu_has_native_bf16():  # the models layer's own probe agrees with training's
        assert choose_inference_precision("bf16", "cpu")[0] == "bf16"
    else:
        with pytest.raises(ConfigError, match="no native bf16"):
            choose_inference_precision("bf16", "cpu")


def test_bf16_on_a_cpu_without_native_bf16_is_refused_mocked(monkeypatch):
    """A CPU without AVX512-BF16 or AMX cannot be had on demand: the probe is patched."""
    monkeypatch.setattr(runtime_module, "cpu_has_native_bf16", lambda: False)
    with pytest.raises(ConfigError, match="no native bf16 .* emulated and slower than fp32"):
        choose_inference_precision("bf16", "cpu")


@pytest.mark.parametrize(
    ("capability", "requested", "chosen"),
    [((9, 0), "auto", "bf16"), ((8, 0), "auto", "bf16"), ((7, 5), "auto", "fp16"), ((7, 5), "fp16", "fp16")],
)
def test_choose_inference_precision_on_cuda_mocked(monkeypatch, capability, requested, chosen):
    """No GPU here: the device's compute capability and name are patched."""
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Some GPU")
    precision, reason = choose_inference_precision(requested, "cuda")
    assert precision == chosen and f"compute capability {capability[0]}.{capability[1]}" in reason
    if capability < (8, 0):
        with pytest.raises(ConfigError, match="bf16 needs compute capability >= 8.0"):
            choose_inference_precision("bf16", "cuda")
    with pytest.raises(ConfigError, match="int8 runs through ONNX Runtime on the CPU"):
        choose_inference_precision("int8", "cuda")
