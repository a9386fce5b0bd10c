"""A synced clinic whose PMS names carry an attacker's text."""

from __future__ import annotations

from pathlib import Path

from tests.clinic_files import write_clinic
from worker.services.orgs import NewOrganisation, add_organisation
from worker.services.sync import request_sync, run_sync


def synced_clinic_with_names(runtime, tmp_path: Path, slug: str, names: dict[str, str]) -> None:
    """Ana, Ben and Cara (ids 101-103) renamed as given, added and synced once."""
    pms, ptdirect = write_clinic(tmp_path / slug)
    rows = {"101": "ana", "102": "ben", "103": "cara"}
    lines = ["id,name,email,active,updated_at"]
    for pid, who in rows.items():
        name = names.get(pid, who.title()).replace('"', '""')
        lines.append(f'{pid},"{name}",{who}@clinic.example,true,')
    (pms / "practitioners.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    add_organisation(
        runtime,
        NewOrganisation(
            slug=slug, pms="csv", pms_path=str(pms), ptdirect="file", ptdirect_path=str(ptdirect)
        ),
    )
    run_id, _ = request_sync(runtime, slug, "test")
    outcome = run_sync(runtime, run_id)
    assert outcome is not None
