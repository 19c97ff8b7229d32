"""Readers of Linux's ``/proc``, the only place the package parses it: free memory, the CPU model, this
process's resident memory, and CPU time of the host, of given processes and of a process group. Each
answers None (or a neutral value) where there is no ``/proc``. Also who owns a record left on disk (this
host's name and pid) and whether that owner is gone."""

import platform

import os
from pathlib import Path
from typing import FrozenSet, Iterable, Optional, Tuple

PROC = Path("/proc")


def mem_available_mb() -> float:
    """``MemAvailable`` from /proc/meminfo in MiB (infinite where unknown)."""
    try:
        for line in (PROC / "meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("inf")


def cpu_model() -> Optional[str]:
    """The CPU's model name from /proc/cpuinfo; None where it cannot be read."""
    try:
        for line in (PROC / "cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_flags() -> FrozenSet[str]:
    """The CPU's feature flags from /proc/cpuinfo (``avx2``, ``avx512_vnni`` ...); empty where unknown."""
    try:
        for line in (PROC / "cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def int8_sums_saturate() -> bool:
    """True on an x86 CPU without VNNI (AVX2 only): there ONNX Runtime's u8*s8 kernels add pairs of products
    into int16 and saturate, so 8-bit weights lose accuracy and 7-bit ones (``reduce_range``) do not."""
    if platform.machine().lower() not in ("x86_64", "amd64", "i686", "x86"):
        return False
    flags = cpu_flags()
    return bool(flags) and not flags & {"avx512_vnni", "avx_vnni", "amx_int8"}


def status_bytes(field: str) -> int:
    """A memory field of /proc/self/status (``VmRSS``, ``VmHWM``) in bytes; KeyError when it is absent."""
    for line in (PROC / "self" / "status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def clear_peak_rss() -> None:
    """Reset this process's RSS high-water mark (``VmHWM``); OSError where the kernel offers no way."""
    (PROC / "self" / "clear_refs").write_text("5")


def host_ticks() -> Optional[Tuple[int, int, int]]:
    """``(busy, total, steal)`` jiffies over all CPUs since boot; None where /proc/stat is missing."""
    try:
        fields = [int(v) for v in (PROC / "stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return None
    user, nice, system, idle, iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return user + nice + system + irq + softirq, sum(fields[:8]), steal


def _stat_fields(pid) -> list:
    """The fields of /proc/<pid>/stat after the command name (which may hold spaces and parentheses)."""
    stat = (PROC / str(pid) / "stat").read_text()
    return stat[stat.rindex(")") + 2:].split()


def process_ticks(pids: Iterable[int]) -> int:
    """User + system jiffies of the processes ``pids`` (all their threads); a vanished one counts 0."""
    total = 0
    for pid in pids:
        try:
            rest = _stat_fields(pid)
            total += int(rest[11]) + int(rest[12])  # fields 14 and 15: utime, stime
        except (OSError, ValueError, IndexError):
            pass
    return total


def group_cpu_seconds(pgrp: int) -> Optional[float]:
    """CPU seconds (user + system) used so far by every process of process group ``pgrp``; None where there
    is no ``/proc``."""
    if not (PROC / "self" / "stat").exists():
        return None
    tick, total = os.sysconf("SC_CLK_TCK"), 0.0
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = _stat_fields(entry.name)
        except (OSError, ValueError):  # ended meanwhile
            continue
        if int(fields[2]) == pgrp:  # state ppid pgrp ... utime(11) stime(12)
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def host_name() -> str:
    """This machine's name as an owner record gives it (letters, digits, ``_.-``; at most 64 characters)."""
    import re
    import socket

    return re.sub(r"[^A-Za-z0-9_.-]+", "_", socket.gethostname())[:64]


def owner_gone(host: Optional[str], pid: Optional[str]) -> bool:
    """Whether the process ``pid`` of machine ``host`` is known to have ended. Only this machine's processes can be
    asked: another machine's, or a record without a valid pid, counts as still running."""
    if host != host_name() or not str(pid or "").isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError):  # another user's process, or no such pid could exist
        return False
    return False
