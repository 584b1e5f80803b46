"""Data parallelism through torchrun: the process group, rank helpers, and the launcher.

``amploop train --nproc-per-node N`` starts ``python -m torch.distributed.run`` with the same
command minus the launcher flags; ``torchrun ... -m amploop train ...`` works too. Inside a
worker, torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR) says where it is.
NCCL is used on CUDA and gloo on CPU. Collectives get a timeout, and torchrun's agent stops
every rank when one fails, so an error on one rank never leaves the others hanging.

When amploop launches torchrun itself, the workers write their error (if any) to a folder named
by ``AMPLOOP_ERROR_DIR`` instead of printing it, and the agent runs quietly: the launcher then
reports the first failure once, with that worker's exit code, as if it had been one process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from amploop.errors import ConfigError

__all__ = [
    "DistributedContext",
    "LaunchOutcome",
    "check_process_count",
    "launch_torchrun",
    "setup_distributed",
    "teardown_distributed",
]

ERROR_DIR_ENV = "AMPLOOP_ERROR_DIR"


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
) -> LaunchOutcome:
    """Run ``python -m amploop <command>`` under torchrun; the first failing worker's code and error."""
    argv = [
        sys.executable,
        "-m",
        "amploop.train.distributed",
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
    with tempfile.TemporaryDirectory(prefix="amploop-errors-") as error_dir:
        env = {
            **os.environ,
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
            ERROR_DIR_ENV: error_dir,
        }
        code = subprocess.call(argv, env=env)
        return LaunchOutcome(code, _first_error(Path(error_dir)) if code else None)


@dataclass(frozen=True)
class LaunchOutcome:
    """How a torchrun launch ended: the exit code, and the failing worker's error object if it wrote one."""

    exit_code: int
    error: dict[str, Any] | None = None


def record_worker_error(error: dict[str, Any], exit_code: int) -> bool:
    """Under amploop's own launcher, keep this worker's error for the launcher to report; False elsewhere."""
    folder = os.environ.get(ERROR_DIR_ENV)
    if not (folder and in_torchrun()):
        return False
    path = Path(folder) / f"rank-{int(os.environ['RANK']):05d}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"exit_code": exit_code, "error": error}, default=str))
    os.replace(tmp, path)
    return True


def _first_error(folder: Path) -> dict[str, Any] | None:
    """The error written first (rank order breaks ties): the root cause, not the ranks it stopped."""
    found = []
    for path in folder.glob("rank-*.json"):
        try:
            found.append((path.stat().st_mtime_ns, path.name, json.loads(path.read_text())))
        except (OSError, ValueError):
            continue
    return min(found)[2] if found else None


def _agent_main(argv: list[str]) -> int:
    """torchrun's agent, with its failure report replaced by the failing worker's exit code.

    The workers report their own errors (see :func:`record_worker_error`); torchrun's summary
    and traceback would only repeat them less clearly.
    """
    import logging

    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    for name in [n for n in logging.root.manager.loggerDict if n.startswith("torch.distributed")]:
        logging.getLogger(name).setLevel(logging.CRITICAL)  # the agent's own lines repeat the workers' errors
    try:
        run(parse_args(argv))
    except ChildFailedError as exc:
        _, first = exc.get_first_failure()
        code = first.exitcode
        return code if code > 0 else 128 + (-code if code < 0 else 1)  # killed by a signal: 128 + signal
    return 0


if __name__ == "__main__":
    sys.exit(_agent_main(sys.argv[1:]))


def check_process_count(processes: int, device: str) -> None:
    """Refuse more processes than this machine has devices for: one GPU per rank on CUDA, one core per rank on CPU."""
    on_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if on_cuda:
        available, what = torch.cuda.device_count(), "CUDA GPUs"
    else:
        available, what = os.cpu_count() or 1, "CPU cores"
    if processes > available:
        raise ConfigError(
            f"train.nproc_per_node: {processes} processes but this machine has {available} {what}; "
            f"use --nproc-per-node {available} or fewer"
        )
