"""Data parallelism through torchrun: the process group, rank helpers, and the launcher.

``amploop train --nproc-per-node N`` starts ``python -m torch.distributed.run`` with the same
command minus the launcher flags; ``torchrun ... -m amploop train ...`` works too. Inside a
worker, torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR) says where it is.
NCCL is used on CUDA and gloo on CPU. Collectives get a timeout, and torchrun's agent stops
every rank when one fails, so an error on one rank never leaves the others hanging.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

__all__ = ["DistributedContext", "launch_torchrun", "setup_distributed", "teardown_distributed"]


@dataclass(frozen=True)
class DistributedContext:
    rank: int
    local_rank: int
    world_size: int
    device: torch.device
    backend: str | None  # None when running as a single process

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def restart_count(self) -> int:
        """How many times torchrun has restarted this job after a failure."""
        return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        """The mean of ``value`` over all ranks (a sync point)."""
        if self.enabled:
            value = value.clone()
            dist.all_reduce(value, op=dist.ReduceOp.SUM)
            value /= self.world_size
        return value


def in_torchrun() -> bool:
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ and "LOCAL_RANK" in os.environ


def _pick_device(request: str, local_rank: int) -> torch.device:
    if request == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    if request.startswith("cuda"):
        if not torch.cuda.is_available():
            from amploop.errors import ConfigError

            raise ConfigError("device 'cuda' requested but no CUDA GPU is visible; use --device cpu")
        return torch.device(f"cuda:{local_rank}") if request == "cuda" else torch.device(request)
    return torch.device(request)


def setup_distributed(device: str = "auto", *, timeout_s: float = 300.0) -> DistributedContext:
    """Join torchrun's process group when launched by it; else a single-process context."""
    if not in_torchrun() or int(os.environ["WORLD_SIZE"]) == 1:
        return DistributedContext(0, 0, 1, _pick_device(device, 0), None)
    rank, local_rank = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
    world_size = int(os.environ["WORLD_SIZE"])
    chosen = _pick_device(device, local_rank)
    backend = "nccl" if chosen.type == "cuda" else "gloo"
    if chosen.type == "cuda":
        torch.cuda.set_device(chosen)
    if not dist.is_initialized():
        timeout = timedelta(seconds=timeout_s)
        if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True":
            # torchrun's agent keeps one store across restarts; keys of the failed attempt (gloo's peer
            # addresses among them) would be read again and the new attempt would wait on dead peers.
            # A prefix per attempt gives every attempt fresh keys.
            store = dist.TCPStore(
                os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), world_size, is_master=False, timeout=timeout
            )
            attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
            dist.init_process_group(
                backend=backend,
                store=dist.PrefixStore(f"amploop/attempt-{attempt}", store),
                rank=rank,
                world_size=world_size,
                timeout=timeout,
            )
        else:
            dist.init_process_group(backend=backend, timeout=timeout)
    return DistributedContext(rank, local_rank, world_size, chosen, backend)


def teardown_distributed(ctx: DistributedContext) -> None:
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()


def launch_torchrun(
    command: list[str],
    *,
    nproc_per_node: int,
    nnodes: str = "1",
    node_rank: int | None = None,
    rdzv_endpoint: str | None = None,
    rdzv_id: str | None = None,
    max_restarts: int = 0,
    monitor_interval_s: float | None = None,
) -> int:
    """Run ``python -m amploop <command>`` under ``torch.distributed.run``; return its exit code."""
    argv = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nproc-per-node={nproc_per_node}",
        f"--nnodes={nnodes}",
        f"--max-restarts={max_restarts}",
    ]
    if rdzv_endpoint:
        argv += ["--rdzv-backend=c10d", f"--rdzv-endpoint={rdzv_endpoint}"]
        if rdzv_id:
            argv.append(f"--rdzv-id={rdzv_id}")
    elif nnodes == "1":
        argv.append("--standalone")
    if node_rank is not None:
        argv.append(f"--node-rank={node_rank}")
    if monitor_interval_s is not None:
        argv.append(f"--monitor-interval={monitor_interval_s}")
    argv += ["-m", "amploop", *command]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    return subprocess.call(argv, env=env)
