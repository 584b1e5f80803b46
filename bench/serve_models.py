"""Serving speed of the inference precisions and runtimes, side by side (CPU).

Two models, trained briefly in this run into a temporary AMPLOOP_HOME: the adult MLP (``mlp``,
2 epochs) and the mnist5k CNN (``cnn``, 1 epoch). Contenders, all built by
:class:`~amploop.models.runtime.Predictor` from the same bundle:

- torch fp32 (the reference), torch bf16 autocast (only on a CPU with native bf16);
- ONNX Runtime fp32 (the verified exported graph) and ONNX Runtime int8 (that graph with its
  matrix multiplications dynamically quantized).

For each: rows/s of ``predict_outputs`` (what serving runs: schema check, encoding, forward,
calibrated softmax) one row per call and 64 rows per call, the same for the raw forward pass on
already encoded inputs, and the agreement with torch fp32 (same most likely class) on every test
row. Contenders run interleaved for several rounds and each keeps its best round, as timeit does.
Timings are reported, never asserted.

    .venv/bin/python bench/serve_models.py [--rounds 7] [--threads 1] [--single-rows 200] [--batch-rows 2048]

One thread by default: a serving worker per core is the usual layout, and on a small shared
machine the timings jitter far less. ONNX Runtime gets the same number of intra-op threads.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from amploop.config import AmploopConfig, ModelConfig, TrainConfig
from amploop.data import load_builtin
from amploop.errors import ConfigError
from amploop.models.runtime import Predictor, check_parity, choose_inference_precision, model_inputs
from amploop.train.fit import bundle_from_fit, fit

CONTENDERS = (("torch", "fp32"), ("torch", "bf16"), ("onnx", "fp32"), ("onnx", "int8"))
BATCH = 64
COLUMNS = ("predict, 1 row", f"predict, {BATCH} rows", "forward, 1 row", f"forward, {BATCH} rows")


@dataclass
class Contender:
    name: str
    predictor: Predictor | None  # None: not available here
    why_not: str = ""
    best_seconds: dict[str, float] = field(default_factory=dict)  # per column: the best round's time
    agreement: float | None = None


def forward_function(predictor: Predictor) -> Callable[[dict[str, torch.Tensor]], object]:
    """The model alone on encoded inputs: no schema check, no encoding, no softmax."""
    if predictor.runner_ is not None:
        runner = predictor.runner_
        return lambda inputs: runner.run({k: v.numpy() for k, v in inputs.items()})
    model, bf16 = predictor.model, predictor.precision == "bf16"

    def forward(inputs: dict[str, torch.Tensor]) -> object:
        autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        with torch.no_grad(), autocast:
            return model(inputs)

    return forward


def timed(calls: list[Callable[[], object]]) -> float:
    started = time.perf_counter()
    for call in calls:
        call()
    return time.perf_counter() - started


def bench_model(label: str, dataset_name: str, architecture: str, epochs: int, args: argparse.Namespace) -> None:
    started = time.perf_counter()
    config = AmploopConfig(
        model=ModelConfig(architecture=architecture), train=TrainConfig(epochs=epochs, precision="fp32", seed=0)
    )
    result = fit(load_builtin(dataset_name), config)
    bundle = bundle_from_fit(result)
    trained_s = time.perf_counter() - started
    test = result.splits.test
    table = test.table.drop(columns=[bundle.target]).reset_index(drop=True)
    arrays = dict(test.arrays)

    contenders = []
    for runtime, precision in CONTENDERS:
        name = f"{'ONNX Runtime' if runtime == 'onnx' else 'torch'} {precision}"
        try:
            choose_inference_precision(precision, "cpu")  # says why bf16 cannot run on this CPU
            contenders.append(Contender(name, Predictor(bundle, precision=precision, runtime=runtime)))
        except ConfigError as exc:
            contenders.append(Contender(name, None, why_not=exc.message))
    reference = contenders[0].predictor
    assert reference is not None

    def rows(start: int, count: int) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
        part = slice(start, start + count)
        return table.iloc[part], {k: v[part] for k, v in arrays.items()}

    n_single = min(args.single_rows, len(table))
    n_batches = min(args.batch_rows, len(table)) // BATCH
    singles = [rows(i, 1) for i in range(n_single)]  # sliced beforehand: slicing is not serving's cost
    batches = [rows(i * BATCH, BATCH) for i in range(n_batches)]
    encode = reference.encoder_.transform
    encoded_singles = [model_inputs(encode(t, a)) for t, a in singles]
    encoded_batches = [model_inputs(encode(t, a)) for t, a in batches]
    row_counts = {COLUMNS[0]: n_single, COLUMNS[1]: n_batches * BATCH, COLUMNS[2]: n_single}
    row_counts[COLUMNS[3]] = n_batches * BATCH

    workloads = {}
    for contender in contenders:
        if contender.predictor is None:
            continue
        predictor, forward = contender.predictor, forward_function(contender.predictor)
        workloads[contender.name] = {
            COLUMNS[0]: [lambda t=t, a=a, p=predictor: p.predict_outputs(t, a) for t, a in singles],
            COLUMNS[1]: [lambda t=t, a=a, p=predictor: p.predict_outputs(t, a) for t, a in batches],
            COLUMNS[2]: [lambda x=x, f=forward: f(x) for x in encoded_singles],
            COLUMNS[3]: [lambda x=x, f=forward: f(x) for x in encoded_batches],
        }
        contender.agreement = check_parity(predictor, reference, table, arrays).agreement
    by_name = {c.name: c for c in contenders}
    for calls in workloads.values():  # warm-up: allocator, kernels, ONNX Runtime's thread pool
        for column in COLUMNS:
            timed(calls[column][:10])
    for round_index in range(args.rounds):
        order = list(workloads) if round_index % 2 == 0 else list(reversed(workloads))  # drift hits all alike
        for column in COLUMNS:
            for name in order:
                seconds = timed(workloads[name][column])
                best = by_name[name].best_seconds
                best[column] = min(best.get(column, float("inf")), seconds)

    accuracy = result.metrics.get("test_accuracy", float("nan"))
    print(
        f"\n{label}: {architecture}, {epochs} epoch(s), test accuracy {accuracy:.3f}, trained in {trained_s:.1f} s; "
        f"{len(table):,} test rows; rows/s, best of {args.rounds} rounds, (ratio to torch fp32)\n"
    )
    print(f"{'contender':<18}" + "".join(f"{c:>24}" for c in COLUMNS) + f"{'agreement':>11}")
    for contender in contenders:
        if contender.predictor is None:
            print(f"{contender.name:<18}{'n/a: ' + contender.why_not}")
            continue
        cells = []
        for column in COLUMNS:
            speed = row_counts[column] / contender.best_seconds[column]
            reference_speed = row_counts[column] / contenders[0].best_seconds[column]
            cells.append(f"{speed:>15,.0f} ({speed / reference_speed:>5.2f})")
        print(f"{contender.name:<18}" + "".join(f"{c:>24}" for c in cells) + f"{contender.agreement:>11.4f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--single-rows", type=int, default=200, help="rows sent one per call")
    parser.add_argument("--batch-rows", type=int, default=2048, help=f"rows sent {BATCH} per call")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as home:
        os.environ["AMPLOOP_HOME"] = home  # nothing this run makes lands in the user's workspace
        started = time.perf_counter()
        import onnxruntime

        print(
            f"serving speed on the CPU: {args.threads} thread(s), torch {torch.__version__}, "
            f"onnxruntime {onnxruntime.__version__}"
        )
        bench_model("adult MLP", "adult", "mlp", 2, args)
        bench_model("mnist5k CNN", "mnist5k", "cnn", 1, args)
        print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
