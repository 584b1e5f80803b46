"""GPU training throughput: amploop's defaults against plain PyTorch loops, Fabric and Accelerate.

Workloads (synthetic data, already on the GPU for every contender):
- GPT-2 124M (12 layers, 12 heads, 768 wide, vocabulary 50304), batch 16 x 1024 tokens;
- ResNet-50, batch 128, 224x224 images, 1000 classes.

Contenders, run one after another in this one process: plain loop fp32, plain loop bf16
autocast, plain loop "best" (bf16 + torch.compile, + channels_last for ResNet), Lightning
Fabric bf16-mixed and Accelerate bf16 when importable, and amploop (train_model with
precision=auto, compile=auto). Each is warmed up, then timed with torch.cuda.synchronize over
many steps; the median step time gives samples/s, tokens/s and MFU; peak memory is
torch.cuda.max_memory_allocated. Prints a table with ratios last and writes JSON to $OUT.

    PYTHONPATH=. python3 bench/train_gpu.py                       # on the GPU host
    PYTHONPATH=. python3 bench/train_gpu.py --device cpu --small  # a quick check of the script
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from amploop.config import TrainConfig
from amploop.models.zoo import ModelSpec, build_model, count_parameters
from amploop.train.loop import train_model
from amploop.train.tensors import TrainData
from amploop.train.throughput import count_training_flops, peak_tflops, transformer_flops_per_token


def workloads(small: bool) -> list[dict[str, Any]]:
    if small:
        gpt = dict(layers=2, heads=2, width=64, vocab=512, seq=64, batch=4)
        res = dict(depth=18, width=8, size=32, classes=10, batch=8)
    else:
        gpt = dict(layers=12, heads=12, width=768, vocab=50304, seq=1024, batch=16)
        res = dict(depth=50, width=64, size=224, classes=1000, batch=128)
    return [
        {"name": "GPT-2 124M" if not small else "GPT (small)", "kind": "gpt", **gpt},
        {"name": "ResNet-50" if not small else "ResNet (small)", "kind": "resnet", **res},
    ]


def make_model(w: dict[str, Any]) -> torch.nn.Module:
    if w["kind"] == "gpt":
        spec = ModelSpec(vocab_size=w["vocab"], block_size=w["seq"], n_outputs=w["vocab"])
        return build_model("gpt", spec, {"n_layer": w["layers"], "n_head": w["heads"], "n_embd": w["width"]})
    spec = ModelSpec(image_shape=(3, w["size"], w["size"]), n_outputs=w["classes"])
    return build_model("resnet", spec, {"depth": w["depth"], "width": w["width"]})


def make_data(w: dict[str, Any], device: torch.device, batches: int) -> TrainData:
    g = torch.Generator(device="cpu").manual_seed(0)
    n = w["batch"] * batches
    if w["kind"] == "gpt":
        tokens = torch.randint(0, w["vocab"], (n, w["seq"] + 1), generator=g)
        return TrainData({"tokens": tokens[:, :-1].to(device)}, tokens[:, 1:].contiguous().to(device))
    images = torch.randn(n, 3, w["size"], w["size"], generator=g)
    return TrainData({"image": images.to(device)}, torch.randint(0, w["classes"], (n,), generator=g).to(device))


def loss_of(w: dict[str, Any]) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    if w["kind"] == "gpt":
        return lambda out, y: F.cross_entropy(out.float().reshape(-1, out.shape[-1]), y.reshape(-1))
    return lambda out, y: F.cross_entropy(out.float(), y)


def flops_per_sample(w: dict[str, Any], model: torch.nn.Module, data: TrainData, device: torch.device) -> float:
    if w["kind"] == "gpt":
        n_params = count_parameters(model) - model.position.weight.numel()
        per_token = transformer_flops_per_token(n_params, w["layers"], w["heads"], w["width"] // w["heads"], w["seq"])
        return per_token * w["seq"]
    probe = {k: v[:2] for k, v in data.inputs.items()}
    return count_training_flops(model, probe, loss_of(w), data.targets[:2]) / 2


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(step: Callable[[int], None], device: torch.device, warmup: int, steps: int) -> float:
    for i in range(warmup):
        step(i)
    sync(device)
    times = []
    for i in range(steps):
        start = time.perf_counter()
        step(i)
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def plain(w, device, data, mode: str, warmup: int, steps: int) -> dict[str, Any]:
    torch.manual_seed(0)
    model = make_model(w).to(device)
    channels_last = mode == "best" and w["kind"] == "resnet"
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    step_model = torch.compile(model) if mode == "best" and device.type == "cuda" else model
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.type == "cuda")
    dtype = None if mode == "fp32" else torch.bfloat16
    autocast = (lambda: torch.autocast(device.type, dtype=dtype)) if dtype else contextlib.nullcontext
    loss_fn, b = loss_of(w), w["batch"]
    n_batches = len(data) // b

    def step(i: int) -> None:
        j = (i % n_batches) * b
        inputs = {k: v[j : j + b] for k, v in data.inputs.items()}
        if channels_last:
            inputs["image"] = inputs["image"].contiguous(memory_format=torch.channels_last)
        with autocast():
            loss = loss_fn(step_model(inputs), data.targets[j : j + b])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    seconds = time_steps(step, device, warmup, steps)
    return {
        "step_s": seconds,
        "peak": torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None,
        "precision": "fp32" if mode == "fp32" else "bf16",
    }


def _wrapped_run(w, device, data, warmup, steps, model, optimizer, backward) -> dict[str, Any]:
    """Time a framework's own training step (its wrapped model, optimizer and backward)."""
    loss_fn, b = loss_of(w), w["batch"]

    def step(i: int) -> None:
        j = (i % (len(data) // b)) * b
        loss = loss_fn(model({k: v[j : j + b] for k, v in data.inputs.items()}), data.targets[j : j + b])
        backward(loss)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    seconds = time_steps(step, device, warmup, steps)
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    return {"step_s": seconds, "peak": peak, "precision": "bf16"}


def fabric_run(w, device, data, warmup, steps) -> dict[str, Any] | None:
    try:
        from lightning.fabric import Fabric
    except ImportError:
        return None
    fabric = Fabric(accelerator="cuda" if device.type == "cuda" else "cpu", devices=1, precision="bf16-mixed")
    torch.manual_seed(0)
    model = make_model(w)
    model, optimizer = fabric.setup(model, torch.optim.AdamW(model.parameters(), lr=1e-4))
    return _wrapped_run(w, device, data, warmup, steps, model, optimizer, fabric.backward)


def accelerate_run(w, device, data, warmup, steps) -> dict[str, Any] | None:
    try:
        from accelerate import Accelerator
    except ImportError:
        return None
    accelerator = Accelerator(mixed_precision="bf16", cpu=device.type == "cpu")
    torch.manual_seed(0)
    model = make_model(w)
    model, optimizer = accelerator.prepare(model, torch.optim.AdamW(model.parameters(), lr=1e-4))
    return _wrapped_run(w, device, data, warmup, steps, model, optimizer, accelerator.backward)


def amploop_run(w, device, data, warmup, steps, flops) -> dict[str, Any]:
    torch.manual_seed(0)
    settings = TrainConfig(
        precision="auto",
        compile="auto",
        epochs=10**6,
        batch_size=w["batch"],
        max_steps=warmup + steps,
        early_stopping_patience=None,
        device=str(device),
        learning_rate=1e-4,
        warmup_fraction=0.0,
        max_grad_norm=None,
    )
    task = "language_model" if w["kind"] == "gpt" else "classification"
    result = train_model(
        make_model(w),
        data,
        None,
        settings,
        task=task,
        flops_per_sample=flops,
        tokens_per_sample=w["seq"] if w["kind"] == "gpt" else 0,
    )
    t = result.throughput
    return {
        "step_s": t.step_time_ms / 1000,
        "peak": t.peak_memory_bytes if device.type == "cuda" else None,
        "precision": result.precision.mode,
        "mfu_reported": t.mfu,
        "compile": result.compile,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--small", action="store_true", help="tiny models, for checking the script on a CPU")
    parser.add_argument("--warmup", type=int, default=15)
    parser.add_argument("--steps", type=int, default=40)
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cpu" and not args.small:
        print("no GPU here: running the small models instead (GPT-2 124M and ResNet-50 need a GPU host)")
        args.small = True
    if args.small:
        args.warmup, args.steps = min(args.warmup, 3), min(args.steps, 5)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    results: list[dict[str, Any]] = []
    for w in workloads(args.small):
        data = make_data(w, device, batches=4)
        flops = flops_per_sample(w, make_model(w).to(device), data, device)
        contenders = {  # each is called right away, in this iteration
            "plain fp32": partial(plain, w, device, data, "fp32", args.warmup, args.steps),
            "plain bf16": partial(plain, w, device, data, "bf16", args.warmup, args.steps),
            "plain best": partial(plain, w, device, data, "best", args.warmup, args.steps),
            "Fabric bf16-mixed": partial(fabric_run, w, device, data, args.warmup, args.steps),
            "Accelerate bf16": partial(accelerate_run, w, device, data, args.warmup, args.steps),
            "amploop default": partial(amploop_run, w, device, data, args.warmup, args.steps, flops),
        }
        for label, run in contenders.items():
            got = run()
            if got is None:
                continue
            samples = w["batch"] / got["step_s"]
            peak = peak_tflops(name, got["precision"]) if device.type == "cuda" else None
            results.append(
                {
                    "workload": w["name"],
                    "contender": label,
                    "samples_per_s": samples,
                    "tokens_per_s": samples * w["seq"] if w["kind"] == "gpt" else None,
                    "mfu": flops * samples / (peak * 1e12) if peak else None,
                    "peak_gib": got["peak"] / 2**30 if got["peak"] else None,
                    "precision": got["precision"],
                    "compile": got.get("compile"),
                }
            )
            if device.type == "cuda":
                torch.cuda.empty_cache()
    out_dir = os.environ.get("OUT")
    if out_dir:
        Path(out_dir, "train_gpu.json").write_text(json.dumps({"device": name, "results": results}, indent=2))
    print(f"\ntraining throughput on {name}, torch {torch.__version__}\n")
    print(
        f"{'workload':<16} {'contender':<18} {'samples/s':>10} {'tokens/s':>10} {'MFU':>6} {'peak GiB':>9} "
        f"{'vs best plain':>14} {'vs fp32':>8}"
    )
    for r in results:
        group = [x for x in results if x["workload"] == r["workload"]]
        best = next(x for x in group if x["contender"] == "plain best")["samples_per_s"]
        fp32 = next(x for x in group if x["contender"] == "plain fp32")
        tokens = f"{r['tokens_per_s']:,.0f}" if r["tokens_per_s"] else "-"
        mfu = f"{r['mfu']:.3f}" if r["mfu"] is not None else "-"
        peak = f"{r['peak_gib']:.1f}" if r["peak_gib"] else "-"
        print(
            f"{r['workload']:<16} {r['contender']:<18} {r['samples_per_s']:>10,.1f} {tokens:>10} {mfu:>6} "
            f"{peak:>9} {r['samples_per_s'] / best:>13.2f}x {r['samples_per_s'] / fp32['samples_per_s']:>7.2f}x"
        )
    for workload in dict.fromkeys(r["workload"] for r in results):
        group = {x["contender"]: x for x in results if x["workload"] == workload}
        ours = group["amploop default"]
        for peer in ("Fabric bf16-mixed", "Accelerate bf16"):
            if peer in group:
                print(f"{workload}: amploop / {peer} = {ours['samples_per_s'] / group[peer]['samples_per_s']:.2f}x")
        if ours["peak_gib"] and group["plain fp32"]["peak_gib"]:
            print(f"{workload}: amploop peak memory / fp32 = {ours['peak_gib'] / group['plain fp32']['peak_gib']:.2f}")


if __name__ == "__main__":
    main()
