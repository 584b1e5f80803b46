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
from amploop.train.objective import loss_function, validation_scores
from amploop.train.plan import StepPlan, keep_epoch, plan_steps
from amploop.train.precision import PrecisionChoice, probe_cpu_precision, resolve_precision
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
    rows: int  # training rows
    batch_size: int  # rows per micro-batch, after the cap for small tables
    epochs_planned: int
    notes: list[str]  # what the defaults adjusted, and a one-line summary of the run
    world_size: int
    loss_curve: list[float]  # global mean loss per optimizer step
    history: list[dict[str, float]]  # per epoch: train_loss, val_loss, val_metric, selection_loss
    best_epoch: int | None  # the kept epoch: the latest within noise of the lowest validation loss (plan.keep_epoch)
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


def _scaled(loss: Tensor, rows: int, step_rows: int) -> Tensor:
    """A micro-batch's mean loss weighted by its share of the step's rows: the step's loss is their mean."""
    return loss if rows == step_rows else loss * (rows / step_rows)


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
    loss_fn = loss_function(task)
    accumulation = config.gradient_accumulation_steps
    plan = plan_steps(len(train), config, ctx.world_size)
    micro, steps_per_epoch, total_steps = plan.batch_size, plan.steps_per_epoch, plan.total_steps

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
    precision = resolve_precision(config.precision, device)
    if config.precision == "auto" and precision.device_type == "cpu" and precision.mode == "bf16":
        precision = _probe_cpu_precision(raw_model, train, loss_fn, device, ctx, micro)
    precision.apply_matmul_settings()

    # -- optimizer, schedule, loss scaling -----------------------------------------------------
    fused = True if device.type == "cuda" else None  # None: torch picks foreach or for-loop on the CPU
    decay = [p for p in raw_model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in raw_model.parameters() if p.requires_grad and p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.learning_rate,
        fused=fused,
    )
    sampler = DistributedSampler(  # without drop_last: it pads by repeating rows, so every rank has plan.rows
        range(len(train)), num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True, seed=config.seed
    )
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
    samples_seen = 0  # this process's run only: a resumed run counts from where it resumed
    stopped_early = False
    step_model.train()
    with progress_bar(progress and ctx.is_main) as bar:
        task_id = bar.add_task("training", total=total_steps, completed=state.step) if bar else None
        while state.epoch < plan.epochs and state.step < total_steps:
            sampler.set_epoch(state.epoch)
            order = torch.tensor(list(iter(sampler)), dtype=torch.long)
            for batch in range(state.batch, steps_per_epoch):
                if state.step >= total_steps:
                    break
                _reseed(_step_seed(config.seed, ctx.rank, state.step), device)
                step_start = time.perf_counter()
                data_seconds = 0.0
                loss_sum: Tensor | None = None
                first, last = plan.step_rows(batch, accumulation)
                chunks = torch.tensor_split(order[first:last], accumulation)  # the last step may be short
                for m, rows in enumerate(chunks):
                    t0 = time.perf_counter()
                    inputs, targets = train.batch(rows, device)
                    if channels_last and "image" in inputs:
                        inputs["image"] = inputs["image"].contiguous(memory_format=torch.channels_last)
                    data_seconds += time.perf_counter() - t0
                    sync = ddp_model.no_sync() if ctx.enabled and m < accumulation - 1 else contextlib.nullcontext()
                    with sync:
                        try:
                            with precision.autocast():
                                loss = _scaled(loss_fn(step_model(inputs), targets), len(rows), last - first)
                        except Exception as exc:  # noqa: BLE001 - any compiler failure falls back to eager
                            if not compile_info["used"] or step_model is ddp_model:
                                raise
                            compile_info.update(used=False, fallback_reason=f"{type(exc).__name__}: {exc}"[:500])
                            step_model = ddp_model
                            with precision.autocast():
                                loss = _scaled(loss_fn(step_model(inputs), targets), len(rows), last - first)
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
                samples_seen += (last - first) * ctx.world_size
                meter.record(
                    time.perf_counter() - step_start,
                    data_seconds,
                    last - first,
                    tokens_per_sample * (last - first),
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
                    scores = validation_scores(raw_model, validation, task, precision)
                    record.update(val_loss=scores.loss, val_metric=scores.metric, selection_loss=scores.selection_loss)
                    if keep_epoch(state, state.epoch + 1, scores):
                        best_weights = {k: v.detach().clone() for k, v in raw_model.state_dict().items()}
                state.history.append(record)
                state.epoch += 1
                state.batch = 0
                patience = plan.patience
                if validation is not None and patience is not None and state.bad_epochs >= patience:
                    stopped_early = True
                    break
                continue
            break  # max_steps reached inside the epoch

    if best_weights is not None and validation is not None:
        raw_model.load_state_dict(best_weights)
    state.finished = True
    save_checkpoint()
    ctx.barrier()
    report = meter.report(flops_per_sample=flops_per_sample, precision_mode=precision.mode, world_size=ctx.world_size)
    return TrainResult(
        model=raw_model,
        precision=precision,
        task=task,
        epochs_run=state.epoch,
        steps=state.step,
        samples_seen=samples_seen,
        rows=len(train),
        batch_size=micro,
        epochs_planned=plan.epochs,
        notes=[*plan.notes, _summary(state, plan, len(train), stopped_early, validation is not None)],
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


def _summary(state: TrainState, plan: StepPlan, rows: int, stopped_early: bool, validated: bool) -> str:
    line = f"trained {state.step} steps on {rows:,} rows (batch {plan.batch_size}, "
    line += f"{state.epoch} of {plan.epochs} epochs"
    if stopped_early:
        line += f", stopped early: {plan.patience} epochs without a better validation loss"
    line += ")"
    if validated and state.best_epoch is not None:
        line += f"; kept epoch {state.best_epoch} "
        line += f"(validation loss {state.best_loss:.4f}, lowest {state.lowest_loss:.4f})"
    return line


def _probe_cpu_precision(
    model: nn.Module, train: TrainData, loss_fn: Any, device: torch.device, ctx: DistributedContext, batch: int
) -> PrecisionChoice:
    """Time a few forward/backward passes of this model on one batch in fp32 and in bf16; keep the faster."""
    inputs, targets = train.batch(torch.arange(min(batch, len(train))), device)
    model.eval()  # no batch-norm statistics move while timing

    def step(choice: PrecisionChoice) -> None:
        with choice.autocast():
            loss = loss_fn(model(inputs), targets)
        loss.backward()

    choice = probe_cpu_precision(step)
    model.zero_grad(set_to_none=True)
    model.train()
    if ctx.enabled:  # ranks may time differently: the majority decides, so all run the same precision
        votes = ctx.mean(torch.tensor(1.0 if choice.mode == "bf16" else 0.0))
        if (float(votes) > 0.5) != (choice.mode == "bf16"):
            mode = "bf16" if float(votes) > 0.5 else "fp32"
            reason = f"{mode}: the majority of {ctx.world_size} processes measured it faster"
            choice = PrecisionChoice("auto", mode, "cpu", reason)
    return choice
