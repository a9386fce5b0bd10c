"""Benchmark: how fast the org page is served, and how big it is, as a clinic grows.

Generated clinics (teams of 4 to 10, as `ptsync demo --size`) of 40, 300 and 1,000
practitioners are synced into a temporary SQLite database; then the logged-in org page is
requested 5 times through the real app (in process) and the median time is printed beside the
target (under 1 s for 300 practitioners), with the page's size and the sync's duration.

Run: .venv/bin/python bench/page_scale.py
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from cryptography.fernet import Fernet

SIZES = (40, 300, 1000)
TARGET_SECONDS = 1.0
REPEATS = 5


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="ptsync-page-bench-"))
    os.environ["PTSYNC_DATABASE_URL"] = f"sqlite:///{folder / 'bench.db'}"
    os.environ["PTSYNC_SECRET_KEY"] = Fernet.generate_key().decode()
    from fastapi.testclient import TestClient

    from worker.clock import utcnow
    from worker.demo_generated import write_generated_clinic
    from worker.runtime import get_runtime
    from worker.services.credentials import create_admin_token
    from worker.services.orgs import NewOrganisation, add_organisation
    from worker.services.sync import request_sync, run_sync
    from worker.web import create_app

    runtime = get_runtime()
    print(f"{'practitioners':>13} {'sync s':>8} {'page p50 s':>11} {'target s':>9} {'page KiB':>9}")
    with TestClient(create_app(send=lambda run_id: None, background=False)) as client:
        for size in SIZES:
            slug = f"bench-{size}"
            write_generated_clinic(folder / slug, utcnow().date(), size)
            add_organisation(
                runtime,
                NewOrganisation(
                    slug=slug,
                    pms="csv",
                    pms_path=str(folder / slug),
                    ptdirect="file",
                    ptdirect_path=str(folder / slug / "ptdirect.json"),
                ),
            )
            started = time.perf_counter()
            run_id, _ = request_sync(runtime, slug, "manual")
            run_sync(runtime, run_id)
            synced = time.perf_counter() - started
            token = create_admin_token(runtime, slug, "bench")
            client.cookies.clear()
            client.post(f"/orgs/{slug}/login", data={"token": token}, follow_redirects=False)
            timings, size_bytes = [], 0
            for _ in range(REPEATS):
                started = time.perf_counter()
                response = client.get(f"/orgs/{slug}/")
                timings.append(time.perf_counter() - started)
                size_bytes = len(response.content)
                assert response.status_code == 200, response.status_code
            target = f"{TARGET_SECONDS:.1f}" if size == 300 else "-"
            print(
                f"{size:>13} {synced:>8.2f} {statistics.median(timings):>11.3f} {target:>9} "
                f"{size_bytes / 1024:>9.0f}"
            )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
