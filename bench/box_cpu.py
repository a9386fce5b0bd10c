"""CPU time of the processes on this box, by role: what a benchmark's figure cost the machine.

On a 2-core box everything competes: ptsync's processes, PostgreSQL, Redis, the emulators and
the benchmark script itself. A benchmark takes `cpu_by_role` before and after what it measures
and prints the difference per unit of work, so a figure comes with where the machine's time
went (and a busy machine shows as CPU nobody here used).
"""

from __future__ import annotations

import os
from pathlib import Path


def cpu_by_role(groups: dict[str, int], pids: dict[str, int] | None = None) -> dict[str, float]:
    """CPU seconds (user + system) so far of: every process in each process group of `groups`
    (role -> group id), each process of `pids` (role -> pid), every PostgreSQL backend
    ("postgresql"), this script ("this script") and everything else on the box ("other")."""
    ticks = os.sysconf("SC_CLK_TCK")
    roles = dict.fromkeys([*groups, *(pids or {}), "postgresql", "this script", "other"], 0.0)
    by_pid = {pid: role for role, pid in (pids or {}).items()}
    by_group = {group: role for role, group in groups.items()}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command, fields = (entry / "stat").read_text().rsplit(")", 1)
        except OSError:
            continue
        fields = fields.split()
        pid, seconds = int(entry.name), (int(fields[11]) + int(fields[12])) / ticks
        if pid in by_pid:
            roles[by_pid[pid]] += seconds
        elif int(fields[2]) in by_group:
            roles[by_group[int(fields[2])]] += seconds
        elif command.endswith("(postgres"):
            roles["postgresql"] += seconds
        elif pid == os.getpid():
            roles["this script"] += seconds
        else:
            roles["other"] += seconds
    return roles


def per_unit(before: dict[str, float], after: dict[str, float], units: int) -> str:
    """`role 12.3 ms, ...` per unit of work, largest first. "Other" is left out: it is not this
    benchmark's, and processes that ended between the readings make it meaningless."""
    spent = {role: after[role] - before.get(role, 0.0) for role in after if role != "other"}
    ours = sorted(spent, key=lambda role: -spent[role])
    return ", ".join(f"{role} {1000 * spent[role] / units:.1f} ms" for role in ours)


def total(before: dict[str, float], after: dict[str, float], *, other: bool = False) -> float:
    """CPU seconds spent between the two readings (without "other" unless asked)."""
    return sum(after[role] - before.get(role, 0.0) for role in after if other or role != "other")
