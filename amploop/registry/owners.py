"""Who owns a running run: its host and process, and whether that process still lives.

A run killed with SIGKILL (or by the OOM killer, or a reboot) never records its end. The store
keeps the host name, pid and, on Linux, the process's start (pid namespace, boot id, start
ticks) of each run, so a pid the kernel later handed to another process does not keep a dead
run alive, and runs of other hosts or containers are never judged from here.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from amploop.registry.tables import RunRow

__all__ = ["process_start", "stale_runs"]


def _proc_stat(pid: int) -> list[str] | None:
    """Fields 3 onwards of /proc/PID/stat (state first), or None where there is no such file."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 2, the command name, is in parentheses and may itself hold spaces and parentheses.
    return stat[stat.rfind(")") + 2 :].split()


def _this_kernel() -> tuple[str, str] | None:
    """(pid namespace, boot id) of this process on Linux: which pids it can see, and since when."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")  # "pid:[4026531836]"; containers have their own
        boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None
    return namespace.removeprefix("pid:[").removesuffix("]"), boot_id


def process_start(pid: int) -> str | None:
    """On Linux ``NAMESPACE/BOOT_ID/START_TICKS``: no later process with the same pid has the same one."""
    kernel, fields = _this_kernel(), _proc_stat(pid)
    if kernel is None or fields is None or len(fields) < 20:
        return None
    return f"{kernel[0]}/{kernel[1]}/{fields[19]}"  # field 22 of proc(5): starttime, clock ticks after boot


def _why_gone(pid: int, recorded_start: str | None, host: str) -> str | None:
    """Why the process that owned a run no longer runs, or None while it lives or cannot be seen."""
    if os.name != "posix" or pid <= 0:  # os.kill(pid, 0) only probes on POSIX; pid 0 is a group
        return None
    gone = f"process {pid} on host {host} is gone"
    recorded = recorded_start.split("/") if recorded_start else None
    kernel = _this_kernel()
    if recorded is not None and len(recorded) == 3 and kernel is not None:
        if recorded[0] != kernel[0]:  # another container with the same host name: its pids are not ours
            return None
        if recorded[1] != kernel[1]:  # no process outlives a restart of its machine
            return f"{gone} (the host restarted since)"
    try:
        os.kill(pid, 0)  # signal 0: nothing is sent; only whether the pid exists is checked
    except ProcessLookupError:
        return gone
    except PermissionError:
        pass  # it exists, owned by another user
    fields = _proc_stat(pid)
    if fields is None:  # no /proc (macOS): the pid exists, and that is all that can be known
        return None
    if fields[0] == "Z":  # killed, not yet waited for by its parent
        return gone
    if recorded_start is not None and process_start(pid) not in (None, recorded_start):
        return f"{gone} (pid {pid} now belongs to a newer process)"
    return None


def stale_runs(rows: Iterable[RunRow]) -> dict[str, str]:
    """Run id -> reason, for the running runs among ``rows`` whose process on this host is gone."""
    host = socket.gethostname()
    stale = {}
    for row in rows:
        if row.status != "running" or row.host != host or row.pid is None:
            continue
        reason = _why_gone(row.pid, row.process_start, host)
        if reason is not None:
            stale[row.id] = reason
    return stale
