"""amploop's training loop against a minimal hand-written PyTorch loop (CPU).

Same model (the adult MLP), same encoded data, same batch size, optimizer, clipping,
schedule, precision and number of steps. The two run interleaved, several rounds each, and
the table reports the median time per step (both timed the same way, warm-up
steps left out) and the overhead ratio (amploop / hand-written).

    .venv/bin/python bench/train_overhead.py [--steps 300] [--rounds 5] [--precision auto]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch
import torch.nn.functional as F

from amploop.config import AmploopConfig, TrainConfig
from amploop.data import load_builtin
from amploop.data.splits import prepare_splits
from amploop.models.zoo import build_model
from amploop.train.fit import fit
from amploop.train.loop import train_model
from amploop.train.precision import resolve_precision
from amploop.train.tensors import to_tensors


def hand_written(model, data, steps, batch_size, lr, precision, seed) -> float:
    """The loop a careful user writes by hand: shuffle, gather, autocast, backward, clip, AdamW, schedule."""
    decay = [p for p in model.parameters() if p.dim() >= 2]  # no weight decay on biases and norms
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}], lr=lr
    )
    warmup = max(1, int(0.05 * steps))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.1 + 0.45 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, steps - warmup))))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(data), generator=generator)
    times = []
    for step in range(steps):
        start = time.perf_counter()
        index = order[(step * batch_size) % (len(data) - batch_size) :][:batch_size]
        inputs = {k: v[index] for k, v in data.inputs.items()}
        targets = data.targets[index]
        with precision.autocast():
            loss = F.cross_entropy(model(inputs).float(), targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        scheduler.step()
        times.append(time.perf_counter() - start)
    return statistics.median(times[3:])  # the same warm-up steps amploop's meter leaves out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)  # one thread: less scheduler jitter between the paired rounds

    adult = load_builtin("adult")
    reference = fit(adult, AmploopConfig(train=TrainConfig(epochs=1, max_steps=1)))
    plan = prepare_splits(adult, validation_fraction=0.1, test_fraction=0.2, seed=0)
    data = to_tensors(plan.train, reference.encoder, reference.labels)
    precision = resolve_precision(args.precision, "cpu")
    settings = TrainConfig(
        precision=args.precision,
        epochs=100,
        batch_size=args.batch_size,
        max_steps=args.steps,
        early_stopping_patience=None,
        device="cpu",
        compile="off",
    )

    amploop_times, plain_times = [], []

    def run_amploop() -> None:
        torch.manual_seed(0)
        result = train_model(build_model("mlp", reference.spec), data, None, settings)
        amploop_times.append(result.throughput.step_time_ms / 1000)

    def run_plain() -> None:
        torch.manual_seed(0)
        model = build_model("mlp", reference.spec)
        plain_times.append(hand_written(model, data, args.steps, args.batch_size, 1e-3, precision, 0))

    run_amploop(), run_plain()  # warm both paths once (allocator, kernels); not counted
    amploop_times.clear(), plain_times.clear()
    for round_index in range(args.rounds):  # alternate who goes first: drift hits both alike
        first, second = (run_amploop, run_plain) if round_index % 2 == 0 else (run_plain, run_amploop)
        first(), second()
    ratios = [a / p for a, p in zip(amploop_times, plain_times, strict=True)]

    a, p = min(amploop_times), min(plain_times)  # the least-disturbed round of each, as timeit does
    print(
        f"\ntraining-loop overhead on the CPU: adult MLP, batch {args.batch_size}, {args.steps} steps, "
        f"{precision.mode}, {args.rounds} interleaved rounds\n"
    )
    print(f"{'loop':<14} {'ms/step (best round)':>21} {'samples/s':>10} {'ratio':>7}")
    print(f"{'hand-written':<14} {p * 1000:>21.3f} {args.batch_size / p:>10,.0f} {1.0:>7.3f}")
    print(f"{'amploop':<14} {a * 1000:>21.3f} {args.batch_size / a:>10,.0f} {a / p:>7.3f}")
    print(
        f"\noverhead ratio, median of {args.rounds} paired rounds: {statistics.median(ratios):.3f} "
        f"(rounds: {', '.join(f'{r:.3f}' for r in ratios)})"
    )


if __name__ == "__main__":
    main()
