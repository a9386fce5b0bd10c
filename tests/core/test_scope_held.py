"""Clinic groups: a real leaver must never keep access silently.

A departure that the new `departed_reason` declines to act on (an ambiguous or unplaced
picture) must still surface as a finding, or the member keeps practitioner sharing forever and
nobody is told.
"""

from __future__ import annotations

from sharing import Baseline, PmsPractitioner, Policy, reconcile
from sharing.scope import Scope, apply_scope
from tests.clinic import AS_OF, KEY, Clinic
from tests.core.test_scope_edges import SINCE, SITES


def _north(clinic: Clinic, baseline: frozenset[str]):
    snapshot = apply_scope(clinic.pms(), Scope(locations=("1",)), SINCE)
    return reconcile(
        snapshot, clinic.ptdirect(), Policy(), as_of=AS_OF, pseudonym_key=KEY, baseline=Baseline(baseline)
    )


def _names(result, email: str) -> list[str]:
    return [
        finding.kind.value
        for finding in result.findings
        if any(person.email == email for person in finding.practitioners)
    ]


def test_a_member_who_moved_to_another_site_under_a_new_pms_record_is_not_silently_kept():
    """Given North (location 1) and Ana, a sharing member linked to PMS record 101 at North /
    When she moves to South the way many PMSs do it (101 deactivated, a new active record 201 at
    South with the same email, with bookings there) / Then North's run must either depart her or
    at least name her in a finding. Before the fix, `departed_reason` returns None ('an inactive record
    here, an active one outside') and `unlinked_user` skips her, so there is no operation and NO
    finding: she keeps access to North's shared patients forever. Unscoped, the same two records
    give an `ambiguous_match` finding."""
    clinic = Clinic(locations=list(SITES))
    ana = clinic.practitioner("101", "Ana Silva", member=True, active=False, locations=("1",))
    clinic.practitioner("102", "Ben Ode", member=True, locations=("1",))
    clinic.practitioner("103", "Cara Lim", member=True, locations=("1",))
    clinic.co_treat("101", "102", "103", patients=2, location="1", days_ago=100)
    clinic.co_treat("102", "103", patients=2, location="1")
    clinic.practitioners.append(PmsPractitioner("201", "Ana Silva", ana, True, locations=("2",)))
    clinic.co_treat("201", patients=2, location="2")
    result = _north(clinic, frozenset({"101", "102", "103"}))
    departed = [op for op in result.operations if op.email == ana]
    assert departed or _names(result, ana), "Ana moved to South yet North reports nothing about her"


def test_a_member_who_fell_out_of_the_scope_unplaced_is_named_in_a_finding():
    """Given North (location 1) on a PMS that lists no clinician sites, and Ana, a sharing member
    whose last North rows are older than the window, still active in the PMS, with no rows at any
    other site / When North reconciles / Then she is not departed (nothing places her elsewhere),
    but the run must say so: today she lands in `outside`, `departed_reason` is None and
    `unlinked_user` skips anyone `outside_match` finds, so a member who left keeps sharing with
    no finding at all."""
    clinic = Clinic(locations=list(SITES))
    ana = clinic.practitioner("101", "Ana Silva", member=True)
    clinic.practitioner("102", "Ben Ode", member=True)
    clinic.practitioner("103", "Cara Lim", member=True)
    clinic.co_treat("101", "102", "103", patients=2, location="1", days_ago=600)
    clinic.co_treat("102", "103", patients=2, location="1")
    result = _north(clinic, frozenset({"101", "102", "103"}))
    assert not [op for op in result.operations if op.email == ana and op.op.removal]
    assert _names(result, ana), "a sharing member now outside North's scope gets no finding at all"


def test_an_owner_excluded_by_the_id_of_his_older_record_is_left_alone():
    """Given North's scope excludes the owner Dan by PMS id 108, the record of his that the admin
    found (inactive, same email), while his PT Direct user links to his current record 104,
    active at South, and he shares patients with North's Ana / When North reconciles / Then
    nothing transfers or removes Dan: the exclude list names him (one person, two records of one
    email, as the scope treats them elsewhere). Before the fix, `_excluded` looks only at the record his
    link names (104) and at `outside[email]`, which prefers the active record (104), so the
    entry for 108 protects nobody and Dan is proposed for transfer and removal as
    'outside_scope'."""
    clinic = Clinic(locations=list(SITES))
    clinic.practitioner("101", "Ana Silva", member=True, locations=("1",))
    clinic.practitioner("102", "Ben Ode", member=True, locations=("1",))
    clinic.co_treat("101", "102", patients=2, location="1")
    dan = clinic.practitioner("104", "Dan Owner", member=True, locations=("2",))
    clinic.co_treat("104", "101", patients=2, location="2")
    clinic.practitioners.append(PmsPractitioner("108", "Dan Owner", dan, False, locations=("2",)))
    snapshot = apply_scope(clinic.pms(), Scope(locations=("1",), exclude=("108",)), SINCE)
    result = reconcile(
        snapshot,
        clinic.ptdirect(),
        Policy(),
        as_of=AS_OF,
        pseudonym_key=KEY,
        baseline=Baseline(frozenset({"101", "102"})),
    )
    assert [op.op.value for op in result.operations if op.email == dan] == []


def test_a_member_linked_to_an_old_inactive_record_with_an_active_one_unplaced_is_held_not_removed():
    """Given North (location 1) and Ana, a sharing member whose PT Direct user links to her old
    PMS record 101 (inactive, last North rows older than the window, so outside the scope), and
    an active record 201 with the same email that the read places at no site / When North
    reconciles / Then she is held (an ambiguous_match with side 'scope'), as the same two records
    are when 101 is still inside the scope ('inactive_here_active_elsewhere'). Today
    `outside_match` prefers the linked record 101, the branch for a practitioner outside the
    scope never looks at the active record with her email, and `departure_verdict` answers
    'inactive_in_pms': her patients are transferred and she is removed although the PMS has her
    active (a re-hire is not a leaver)."""
    clinic = Clinic(locations=list(SITES))
    ana = clinic.practitioner("101", "Ana Silva", member=True, active=False)
    clinic.practitioner("102", "Ben Ode", member=True, locations=("1",))
    clinic.practitioner("103", "Cara Lim", member=True, locations=("1",))
    clinic.co_treat("101", "102", "103", patients=2, location="1", days_ago=600)
    clinic.co_treat("102", "103", patients=2, location="1")
    clinic.practitioners.append(PmsPractitioner("201", "Ana Silva", ana, True))
    result = _north(clinic, frozenset({"101", "102", "103"}))
    removals = [op.op.value for op in result.operations if op.email == ana and op.op.removal]
    assert removals == [], (removals, _names(result, ana))
    assert "ambiguous_match" in _names(result, ana)
