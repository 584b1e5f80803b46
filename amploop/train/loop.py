"""The training loop, top to bottom: precision, data parallelism, accumulation, checkpoints.

One optimizer step:

1. for each of ``gradient_accumulation_steps`` micro-batches: forward under autocast, scale
   the loss (fp16 only) and backward. Under DDP the gradient all-reduce runs only on the last
   micro-batch (``no_sync`` on the others);
2. unscale the gradients (so clipping sees true magnitudes), clip their norm;
3. if the loss or the gradient norm is not finite, skip the update; after
   ``max_nonfinite_steps`` such steps in a row stop with a TrainingError that names the last
   good checkpoint. fp16 steps that the GradScaler skips are counted too;
4. optimizer step (fused AdamW on CUDA), scaler update, learning-rate schedule (linear warmup,
   then cosine decay to 10%).

Randomness is reseeded from (seed, rank, step) at every step, so a resumed run draws the same
random numbers as an uninterrupted one and every rank draws different ones.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data.distributed import DistributedSampler

from amploop.config import TrainConfig
from amploop.errors import TrainingError
from amploop.train.checkpoint import CheckpointManager
from amploop.train.distributed import DistributedContext, setup_distributed
from amploop.train.objective import evaluate_loss, loss_function
from amploop.train.precision import PrecisionChoice, resolve_precision
from amploop.train.state import TrainState, checkpoint_files, restore_checkpoint
from amploop.train.tensors import TrainData
from amploop.train.throughput import ThroughputMeter, ThroughputReport, count_training_flops, progress_bar

__all__ = ["TrainResult", "TrainState", "train_model"]


@dataclass(frozen=True)
class TrainResult:
    model: nn.Module = field(repr=False)
    precision: PrecisionChoice
    task: str
    epochs_run: int
    steps: int
    samples_seen: int
    world_size: int
    loss_curve: list[float]  # global mean loss per optimizer step
    history: list[dict[str, float]]  # per epoch: train_loss, val_loss, val_metric
    best_epoch: int | None
    best_val_metric: float | None
    stopped_early: bool
    nonfinite_steps_skipped: int
    scaler_steps_skipped: int
    resumed_from_step: int | None
    compile: dict[str, Any]
    throughput: ThroughputReport
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k not in ("model", "precision", "throughput")}
        out["precision"] = self.precision.to_dict()
        out["throughput"] = self.throughput.to_dict()
        return out


def _warmup_cosine(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def _is_conv_net(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


def _step_seed(seed: int, rank: int, step: int) -> int:
    return (seed * 1_000_003 + rank * 7_919 + step) % (2**63)


def _scaled(loss: Tensor, accumulation: int) -> Tensor:
    return loss if accumulation == 1 else loss / accumulation


def _reseed(seed: int, device: torch.device) -> None:
    # torch.manual_seed also walks every accelerator backend (~120 us); seed only what is used (~1 us).
    torch.default_generator.manual_seed(seed)
    if device.type == "cuda":
        torch.cuda.default_generators[device.index or 0].manual_seed(seed)


def train_model(
    model: nn.Module,
    train: TrainData,
    validation: TrainData | None,
    config: TrainConfig,
    *,
    task: str = "classification",
    ctx: DistributedContext | None = None,
    checkpoint_dir: str | None = None,
    resume: bool = False,
    progress: bool = False,
    flops_per_sample: float | None = None,
    tokens_per_sample: int = 0,
) -> TrainResult:
    """Train ``model`` on ``train``; early-stop on ``validation``; return the best weights' result.

    ``config`` holds every training option (``amploop.yaml``'s ``train:`` section);
    ``checkpoint_dir`` keeps checkpoints there, ``resume`` continues from the latest one, and
    ``progress`` shows a progress bar on stderr (rank 0 only).
    """
    started = time.perf_counter()
    ctx = ctx or setup_distributed(config.device, timeout_s=config.collective_timeout_s)
    device = ctx.device
    precision = resolve_precision(config.precision, device)
    precision.apply_matmul_settings()
    loss_fn = loss_function(task)

    # -- model: placement, memory format, data parallelism, compilation ------------------------
    torch.manual_seed(config.seed)  # identical initial weights on every rank
    model = model.to(device)
    channels_last = config.channels_last == "on" or (
        config.channels_last == "auto" and device.type == "cuda" and _is_conv_net(model)
    )
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    raw_model = model
    ddp_model: nn.Module = model
    if ctx.enabled:
        ddp_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    use_compile = config.compile == "on" or (config.compile == "auto" and device.type == "cuda")
    compile_info: dict[str, Any] = {
        "requested": config.compile,
        "used": use_compile,
        "fallback_reason": None,
    }
    step_model: nn.Module = torch.compile(ddp_model) if use_compile else ddp_model

    # -- optimizer, schedule, loss scaling -----------------------------------------------------
    fused = True if device.type == "cuda" else None  # None: torch picks foreach or for-loop on the CPU
    decay = [p for p in raw_model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in raw_model.parameters() if p.requires_grad and p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.learning_rate,
        fused=fused,
    )
    micro = config.batch_size
    accumulation = config.gradient_accumulation_steps
    sampler = DistributedSampler(
        range(len(train)),
        num_replicas=ctx.world_size,
        rank=ctx.rank,
        shuffle=True,
        seed=config.seed,
        drop_last=True,
    )
    steps_per_epoch = len(sampler) // (micro * accumulation)
    if steps_per_epoch == 0:
        raise TrainingError(
            f"{len(train)} training rows are fewer than one step needs "
            f"({micro} × {accumulation} accumulation × {ctx.world_size} processes); lower --batch-size"
        )
    total_steps = config.epochs * steps_per_epoch
    if config.max_steps is not None:
        total_steps = min(total_steps, config.max_steps)
    warmup = max(1, int(config.warmup_fraction * total_steps))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _warmup_cosine(total_steps, warmup))
    scaler = precision.grad_scaler()

    # -- state, possibly restored from a checkpoint --------------------------------------------
    manager = CheckpointManager(checkpoint_dir) if checkpoint_dir else None
    state = TrainState()
    best_weights: dict[str, Tensor] | None = None
    resumed_from = None
    if manager is not None and (resume or ctx.restart_count > 0):
        found = manager.latest()
        if found is None and resume:
            raise TrainingError(
                f"--resume given but no complete checkpoint in {checkpoint_dir}; start without --resume"
            )
        if found is not None:
            state, best_weights = restore_checkpoint(found, raw_model, optimizer, scheduler, scaler)
            resumed_from = found.step
    elif manager is not None and ctx.is_main:
        manager.clear()  # only amploop's own checkpoint files; a folder with others is refused
    ctx.barrier()

    def save_checkpoint() -> None:
        if manager is None or not ctx.is_main:  # only rank 0 writes
            return
        files = checkpoint_files(state, raw_model, optimizer, scheduler, scaler, config=config, best=best_weights)
        manager.save(state.step, files)

    # -- the loop ------------------------------------------------------------------------------
    meter = ThroughputMeter(device)
    if flops_per_sample is None and device.type == "cuda":
        probe_inputs, probe_targets = train.batch(torch.arange(min(micro, len(train))), device)
        flops_per_sample = count_training_flops(raw_model, probe_inputs, loss_fn, probe_targets) / len(probe_targets)
    streak = 0
    stopped_early = False
    step_model.train()
    with progress_bar(progress and ctx.is_main) as bar:
        task_id = bar.add_task("training", total=total_steps, completed=state.step) if bar else None
        while state.epoch < config.epochs and state.step < total_steps:
            sampler.set_epoch(state.epoch)
            order = torch.tensor(list(iter(sampler)), dtype=torch.long)
            for batch in range(state.batch, steps_per_epoch):
                if state.step >= total_steps:
                    break
                _reseed(_step_seed(config.seed, ctx.rank, state.step), device)
                step_start = time.perf_counter()
                data_seconds = 0.0
                loss_sum: Tensor | None = None
                for m in range(accumulation):
                    t0 = time.perf_counter()
                    start = (batch * accumulation + m) * micro
                    inputs, targets = train.batch(order[start : start + micro], device)
                    if channels_last and "image" in inputs:
                        inputs["image"] = inputs["image"].contiguous(memory_format=torch.channels_last)
                    data_seconds += time.perf_counter() - t0
                    sync = ddp_model.no_sync() if ctx.enabled and m < accumulation - 1 else contextlib.nullcontext()
                    with sync:
                        try:
                            with precision.autocast():
                                loss = _scaled(loss_fn(step_model(inputs), targets), accumulation)
                        except Exception as exc:  # noqa: BLE001 - any compiler failure falls back to eager
                            if not compile_info["used"] or step_model is ddp_model:
                                raise
                            compile_info.update(used=False, fallback_reason=f"{type(exc).__name__}: {exc}"[:500])
                            step_model = ddp_model
                            with precision.autocast():
                                loss = _scaled(loss_fn(step_model(inputs), targets), accumulation)
                        scaler.scale(loss).backward()
                    loss_sum = loss.detach() if loss_sum is None else loss_sum + loss.detach()
                scaler.unscale_(optimizer)
                grad_norm = (
                    torch.nn.utils.clip_grad_norm_(raw_model.parameters(), config.max_grad_norm)
                    if config.max_grad_norm
                    else torch.zeros((), device=device)
                )
                assert loss_sum is not None
                step_loss = float(ctx.mean(loss_sum))  # a sync point: the step's global loss
                finite = math.isfinite(step_loss) and math.isfinite(float(grad_norm))
                if not finite and not scaler.is_enabled():
                    streak += 1
                    state.nonfinite += 1
                    optimizer.zero_grad(set_to_none=True)
                    if streak >= config.max_nonfinite_steps:
                        last = manager.latest() if manager is not None else None
                        where = f"the last good checkpoint is {last.path}" if last else "no checkpoint was saved"
                        raise TrainingError(
                            f"loss was not finite for {streak} steps in a row (step {state.step}); {where}; "
                            "lower the learning rate, use fp32, or check the data for extreme values"
                        )
                    continue
                scale_before = scaler.get_scale() if scaler.is_enabled() else None
                scaler.step(optimizer)
                scaler.update()
                if scale_before is not None and scaler.get_scale() < scale_before:
                    state.scaler_skipped += 1  # inf/NaN gradients: the scaler skipped this step
                    streak = streak + 1 if not finite else 0
                    if streak >= config.max_nonfinite_steps:
                        raise TrainingError(f"fp16 gradients overflowed for {streak} steps in a row; use bf16 or fp32")
                else:
                    streak = 0
                optimizer.zero_grad(set_to_none=True)
                scheduler.step()
                state.step += 1
                state.batch = batch + 1
                state.loss_curve.append(step_loss)
                meter.record(
                    time.perf_counter() - step_start,
                    data_seconds,
                    micro * accumulation,
                    tokens_per_sample * micro * accumulation,
                )
                if bar is not None:
                    bar.update(
                        task_id,
                        advance=1,
                        description=f"epoch {state.epoch + 1} loss {step_loss:.4f} "
                        f"{meter.live_samples_per_s() * ctx.world_size:,.0f} samples/s",
                    )
                if config.checkpoint_every_steps and state.step % config.checkpoint_every_steps == 0:
                    save_checkpoint()
            else:
                # the epoch ran to its end: validate, early-stop, move on
                record = {
                    "epoch": state.epoch + 1,
                    "train_loss": _mean_tail(state.loss_curve, steps_per_epoch),
                }
                if validation is not None:
                    val_loss, val_metric = evaluate_loss(raw_model, validation, task, precision)
                    record.update(val_loss=val_loss, val_metric=val_metric)
                    if state.best_metric is None or val_metric > state.best_metric:
                        state.best_metric, state.best_epoch, state.bad_epochs = val_metric, state.epoch + 1, 0
                        best_weights = {k: v.detach().clone() for k, v in raw_model.state_dict().items()}
                    else:
                        state.bad_epochs += 1
                state.history.append(record)
                state.epoch += 1
                state.batch = 0
                patience = config.early_stopping_patience
                if validation is not None and patience is not None and state.bad_epochs >= patience:
                    stopped_early = True
                    break
                continue
            break  # max_steps reached inside the epoch

    if best_weights is not None and validation is not None:
        raw_model.load_state_dict(best_weights)
    save_checkpoint()
    ctx.barrier()
    report = meter.report(flops_per_sample=flops_per_sample, precision_mode=precision.mode, world_size=ctx.world_size)
    return TrainResult(
        model=raw_model,
        precision=precision,
        task=task,
        epochs_run=state.epoch,
        steps=state.step,
        samples_seen=state.step * micro * accumulation * ctx.world_size,
        world_size=ctx.world_size,
        loss_curve=list(state.loss_curve),
        history=list(state.history),
        best_epoch=state.best_epoch,
        best_val_metric=state.best_metric,
        stopped_early=stopped_early,
        nonfinite_steps_skipped=state.nonfinite,
        scaler_steps_skipped=state.scaler_skipped,
        resumed_from_step=resumed_from,
        compile=compile_info,
        throughput=report,
        seconds=round(time.perf_counter() - started, 3),
    )


def _mean_tail(values: list[float], n: int) -> float:
    tail = values[-n:] if values else [float("nan")]
    return float(np.mean(tail))
