"""Benchmark: the largest clinic, end to end through the CSV connector.

A generated CSV folder of 300 practitioners and 200,000 access rows (about 60,000 patients,
seen by 1 to 4 practitioners of a team of 20, over two years; PT Direct with every practitioner
as a linked user, a third of them in practitioner sharing). Times `ptsync sync big --wait`
on the single-machine default (SQLite, embedded queue), the whole command from start to exit
(interpreter start-up, reading and checking both files, reconcile, report and store), its CPU
time (user + system: what the wall time would be on an idle machine, as the sync runs on one
thread) and its peak resident memory. Each run starts from a fresh database (a first sync: nothing to compare
with); `--repeat` runs it again on the same database (a second sync: a baseline to check).

Run: .venv/bin/python bench/large_clinic.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from cryptography.fernet import Fernet

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from connectors.emulators.sample import linked_ptdirect

PTSYNC = str(Path(sys.executable).parent / "ptsync")
PRACTITIONERS = 300
ROWS = 200_000
TEAM = 20
TARGET_SECONDS = 2.0
TARGET_MB = 400


def write_folder(folder: Path, seed: int = 300) -> None:
    rng = random.Random(seed)
    today = date.today()
    folder.mkdir(parents=True)
    ids = [f"pr{1000 + i}" for i in range(PRACTITIONERS)]
    with (folder / "practitioners.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "name", "email", "active", "updated_at"])
        for i, pid in enumerate(ids):
            writer.writerow([pid, f"P{i} Example", f"practitioner{i}@clinic.example", "true", ""])
    rows = 0
    patient = 0
    with (folder / "patient_access.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["practitioner_id", "patient_id", "source", "last_seen", "status"])
        while rows < ROWS:
            patient += 1
            team = rng.randrange(PRACTITIONERS // TEAM)
            seen_by = rng.sample(range(TEAM), rng.choice((1, 1, 2, 2, 3, 4)))
            for member in seen_by:
                for _ in range(rng.choice((1, 1, 2))):
                    day = today - timedelta(days=rng.randrange(-20, 720))
                    status = "cancelled" if rng.random() < 0.05 else "active"
                    writer.writerow([ids[team * TEAM + member], f"pt{patient}", "appointment", day, status])
                    rows += 1
    linked_ptdirect(folder.parent / "ptdirect.json", "csv", ids, list(range(0, PRACTITIONERS, 3)))


def timed(command: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float, int, float]:
    """(seconds, peak RSS in MB, exit code, CPU seconds) of one command."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    if status != 0:
        print(process.stderr.read().decode(errors="replace")[-2000:], file=sys.stderr)
    cpu = usage.ru_utime + usage.ru_stime
    return elapsed, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status), cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ptsync-large-"))
    write_folder(work / "pms")
    load_before = os.getloadavg()
    firsts, seconds = [], []
    for attempt in range(args.repeat):
        env = {k: v for k, v in os.environ.items() if not k.startswith("PTSYNC_")}
        env.update(
            {
                "PTSYNC_DATABASE_URL": f"sqlite:///{work / f'ptsync-{attempt}.db'}",
                "PTSYNC_SECRET_KEY": Fernet.generate_key().decode(),
            }
        )
        subprocess.run([PTSYNC, "migrate"], env=env, cwd=work, check=True, capture_output=True)
        subprocess.run(
            [PTSYNC, "org", "add", "big", "--pms", "csv", "--pms-path", str(work / "pms"),
             "--ptdirect", "file", "--ptdirect-path", str(work / "ptdirect.json"), "--no-test"],
            env=env, cwd=work, check=True, capture_output=True,
        )  # fmt: skip
        firsts.append(timed([PTSYNC, "sync", "big", "--wait"], env, work))
        seconds.append(timed([PTSYNC, "sync", "big", "--wait"], env, work))
    load = os.getloadavg()
    print(
        f"largest clinic: {PRACTITIONERS} practitioners, {ROWS:,} access rows (CSV folder), "
        f"`ptsync sync big --wait` end to end, SQLite, embedded queue; load average "
        f"{load_before[0]:.2f} at the start, {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at the end "
        f"(on 2 cores, a load above 1 lengthens the wall times)"
    )
    for name, runs in (("first sync", firsts), ("second sync", seconds)):
        best = min(runs)
        print(
            f"{name}: {best[0]:.2f} s (best of {len(runs)}; all: "
            + ", ".join(f"{r[0]:.2f}" for r in runs)
            + f"), CPU {min(r[3] for r in runs):.2f} s (all: "
            + ", ".join(f"{r[3]:.2f}" for r in runs)
            + "; user + system: on a busy machine the wall time is longer), peak RSS "
            f"{max(r[1] for r in runs):.0f} MB; exit codes {sorted({r[2] for r in runs})} "
            f"(target < {TARGET_SECONDS:.0f} s and < {TARGET_MB} MB)"
        )


if __name__ == "__main__":
    main()
