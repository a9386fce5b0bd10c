"""Clinic groups: a site renamed in an export is not a site the organisation's people moved to.

An export names locations by their names, so a renamed site is a new location: people hired
after the rename have rows only at the new name, outside a scope that names the old one. The
read places them at "another site", which alone would depart a sharing member as `outside_scope`
(a transfer and a removal) from their own clinic.
"""

from __future__ import annotations

from sharing import Baseline, FindingKind, PmsLocation, Policy, reconcile
from sharing.scope import Scope, apply_scope
from tests.clinic import AS_OF, KEY, Clinic
from tests.core.test_scope_edges import SINCE

NORTH, RENAMED, SOUTH = "North Physio", "North Physio & Pilates", "South Physio"


def _export_clinic() -> Clinic:
    """North's two long-standing members, whose rows at the old name end 40 days ago."""
    clinic = Clinic(system="export", locations=[PmsLocation(site, site) for site in (NORTH, RENAMED, SOUTH)])
    clinic.practitioner("ann@clinic.example", "Ann Lee", member=True)
    clinic.practitioner("ben@clinic.example", "Ben Ode", member=True)
    clinic.co_treat("ann@clinic.example", "ben@clinic.example", patients=3, location=NORTH, days_ago=40)
    return clinic


def _north(clinic: Clinic):
    snapshot = apply_scope(clinic.pms(), Scope(locations=(NORTH,)), SINCE)
    active = frozenset(p.id for p in snapshot.practitioners if p.active)
    return snapshot, reconcile(
        snapshot, clinic.ptdirect(), Policy(), as_of=AS_OF, pseudonym_key=KEY, baseline=Baseline(active)
    )


def test_a_member_hired_after_a_rename_is_held_with_a_finding_not_departed():
    """Given an export whose North site was renamed 39 days ago (rows since then carry the new
    name), South in use all along, and Cara, a sharing member hired after the rename, with rows
    only at the new name / When North reconciles with --locations naming the old name / Then
    nothing transfers or removes Cara: an `ambiguous_match` (side scope) says the site she is at
    began when North's rows stopped, and to add it to --locations if it is North renamed."""
    clinic = _export_clinic()
    clinic.co_treat("ann@clinic.example", "ben@clinic.example", patients=2, location=RENAMED, days_ago=20)
    cara = clinic.practitioner("cara@clinic.example", "Cara Lim", member=True)
    clinic.co_treat(cara, "ann@clinic.example", patients=2, location=RENAMED, days_ago=5)
    clinic.practitioner("sam@clinic.example", "Sam South", member=False)
    clinic.co_treat("sam@clinic.example", patients=2, location=SOUTH, days_ago=300)
    clinic.co_treat("sam@clinic.example", patients=2, location=SOUTH, days_ago=2)
    snapshot, result = _north(clinic)
    assert (
        "cara@clinic.example" in snapshot.newer_sites_only and "cara@clinic.example" not in snapshot.elsewhere
    )
    assert [op for op in result.operations if op.email == cara] == []
    [held] = [f for f in result.findings if f.kind is FindingKind.AMBIGUOUS_MATCH]
    assert held.evidence == {"side": "scope", "reason": "outside_scope_newer_site", "candidates": []}
    assert "add it to --locations" in held.message and "Cara Lim" in held.message


def test_a_member_who_moved_to_a_site_in_use_while_north_still_is_departs_as_before():
    """Given the same North, still in use (rows 3 days ago), and Cara, a sharing member now with
    rows only at South, which was in use long before / When North reconciles / Then Cara departs
    North as a move (`outside_scope`), with the safeguards of a departure."""
    clinic = _export_clinic()
    clinic.co_treat("ann@clinic.example", "ben@clinic.example", patients=2, location=NORTH, days_ago=3)
    cara = clinic.practitioner("cara@clinic.example", "Cara Lim", member=True)
    clinic.co_treat(cara, "ann@clinic.example", patients=2, location=NORTH, days_ago=600)
    clinic.practitioner("sam@clinic.example", "Sam South", member=False)
    clinic.co_treat("sam@clinic.example", cara, patients=2, location=SOUTH, days_ago=200)
    clinic.co_treat(cara, patients=2, location=SOUTH, days_ago=1)
    snapshot, result = _north(clinic)
    assert "cara@clinic.example" in snapshot.elsewhere
    departed = [f for f in result.findings if f.kind is FindingKind.DEPARTED_PRACTITIONER]
    assert [f.evidence["reason"] for f in departed] == ["outside_scope"]
    assert any(op.email == cara and op.op.removal for op in result.operations)


def test_a_site_first_used_on_the_day_north_was_last_used_is_a_newer_site():
    """Given North's last counted row and the new name's first on the same day (a rename in the
    middle of a working day) / Then the new name is a newer site: its people are held, not moved;
    a cancelled booking at North after that day does not count as North still in use."""
    clinic = _export_clinic()
    clinic.co_treat("ann@clinic.example", patients=1, location=NORTH, days_ago=30)
    cara = clinic.practitioner("cara@clinic.example", "Cara Lim", member=True)
    clinic.co_treat(cara, patients=2, location=RENAMED, days_ago=30)
    from sharing import AccessStatus

    clinic.co_treat(
        "ann@clinic.example", patients=1, location=NORTH, days_ago=2, status=AccessStatus.CANCELLED
    )
    snapshot, result = _north(clinic)
    assert snapshot.newer_sites_only == frozenset({cara}) and snapshot.elsewhere == frozenset()
    assert not [op for op in result.operations if op.email == cara]
