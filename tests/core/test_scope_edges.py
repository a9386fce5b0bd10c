"""Clinic groups, adversarially: scopes that could make a working practitioner look departed.

Each test is a scenario in which a multi-site organisation must not propose a transfer or a
removal, because its picture of where someone works is incomplete or ambiguous.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from sharing import Baseline, PmsLocation, PmsPractitioner, Policy, reconcile
from sharing.scope import Scope, ScopeError, apply_scope
from tests.clinic import AS_OF, KEY, Clinic

SINCE = AS_OF - timedelta(days=540)
SITES = [PmsLocation("1", "North"), PmsLocation("2", "South")]


def _destructive_for(result, email: str) -> list[str]:
    return [
        op.op.value
        for op in result.operations
        if op.email == email and (op.op.removal or op.op.value == "transfer_patients")
    ]


def _reconcile_scoped(clinic: Clinic, scope: Scope, baseline: Baseline):
    """North's run, or None when the scope cannot be applied (a run that fails proposes nothing)."""
    try:
        snapshot = apply_scope(clinic.pms(), scope, SINCE)
    except ScopeError:
        return None
    return reconcile(snapshot, clinic.ptdirect(), Policy(), as_of=AS_OF, pseudonym_key=KEY, baseline=baseline)


def test_a_member_whose_recent_rows_name_no_location_is_not_moved_to_another_site():
    """Given North's organisation (location 1) on a PMS that lists no clinician locations (Semble,
    exports), Ana and Ben share patients in PT Direct, and Ana's bookings in the window carry no
    location (telehealth, or a PMS that stopped sending it) while she is seen at no other site /
    When North reconciles / Then nothing transfers or removes Ana: 'outside_scope' says the PMS has
    her at another site, and here it has her at none (an ambiguous picture is a finding, never a
    guess)."""
    clinic = Clinic(locations=list(SITES))
    clinic.practitioner("101", "Ana Silva", member=True)
    clinic.practitioner("102", "Ben Ode", member=True)
    clinic.practitioner("103", "Cara Lim", member=False)
    clinic.co_treat("102", "103", patients=2, location="1")
    clinic.co_treat("101", patients=3, location=None)  # Ana's rows: at no location
    result = _reconcile_scoped(clinic, Scope(locations=("1",)), Baseline(frozenset({"101", "102", "103"})))
    assert result is not None
    assert _destructive_for(result, "ana@clinic.example") == []


def test_an_included_person_whose_pms_email_changed_is_not_removed_as_outside_scope():
    """Given an organisation scoped by people (include Ana, Ben and Cara by the emails PT Direct
    knows them by), Ana shares patients in PT Direct (her user linked to PMS record 101), and the
    PMS now spells her email differently / When the organisation reconciles / Then Ana is not
    transferred or removed: the include entry no longer matches any PMS practitioner, and a scope
    entry that matches nobody must fail the run (like an unknown location) or still keep the
    person it names, never make them look as if they moved elsewhere."""
    clinic = Clinic(locations=list(SITES))
    clinic.practitioner("101", "Ana Silva", member=True)
    clinic.practitioner("102", "Ben Ode", member=True)
    clinic.practitioner("103", "Cara Lim", member=True)
    clinic.co_treat("101", "102", "103", patients=2, location="1")
    clinic.practitioners[0] = replace(clinic.practitioners[0], email="ana.silva@clinic.example")
    scope = Scope.of([], ["ana@clinic.example", "ben@clinic.example", "cara@clinic.example"], [])
    result = _reconcile_scoped(clinic, scope, Baseline(frozenset({"101", "102", "103"})))
    if result is None:
        return  # refused: the run fails and proposes nothing
    assert _destructive_for(result, "ana@clinic.example") == []


def test_an_excluded_owner_named_by_their_pt_direct_email_is_left_alone_after_a_pms_email_change():
    """Given North's scope excludes the owner Dan by the email PT Direct has for him, Dan shares
    patients in PT Direct (user linked to PMS record 104) and the PMS spells his email otherwise /
    When North reconciles / Then nothing transfers or removes Dan: the scope's exclude list
    promises this organisation leaves him alone entirely."""
    clinic = Clinic(locations=list(SITES))
    clinic.practitioner("101", "Ana Silva", member=True, locations=("1",))
    clinic.practitioner("102", "Ben Ode", member=True, locations=("1",))
    clinic.practitioner("104", "Dan Owner", member=True, locations=("2",))
    clinic.co_treat("101", "102", patients=2, location="1")
    clinic.practitioners[2] = PmsPractitioner(
        "104", "Dan Owner", "dan.owner@clinic.example", True, locations=("2",)
    )
    scope = Scope.of(["1"], [], ["dan@clinic.example"])
    result = _reconcile_scoped(clinic, scope, Baseline(frozenset({"101", "102"})))
    if result is None:
        return
    assert _destructive_for(result, "dan@clinic.example") == []


def test_a_location_scope_left_with_no_active_practitioner_is_suspicious_like_an_empty_one():
    """Given North's last trusted run had Ana and Ben active, both sharing patients, and North now
    lists only Olga, who left years ago (inactive), while Ana and Ben are listed at South (a
    location restructured in the PMS) / When North reconciles / Then no transfer or removal is
    proposed: a scope with nobody active in it is as suspicious as one with nobody at all (which
    `detect_drop` holds whatever the baseline), yet two people lost stay under the
    removal_threshold_people of 2 and both are proposed for transfer and removal."""
    clinic = Clinic(locations=list(SITES))
    clinic.practitioner("101", "Ana Silva", member=True, locations=("2",))
    clinic.practitioner("102", "Ben Ode", member=True, locations=("2",))
    clinic.practitioner("109", "Olga Old", active=False, member=False, locations=("1",))
    clinic.co_treat("101", "102", patients=2, location="2")
    result = _reconcile_scoped(clinic, Scope(locations=("1",)), Baseline(frozenset({"101", "102"})))
    assert result is not None
    assert _destructive_for(result, "ana@clinic.example") == []
    assert _destructive_for(result, "ben@clinic.example") == []


def test_an_excluded_owner_with_an_old_inactive_record_in_scope_is_left_alone():
    """Given the owner Dan is excluded by his PMS id (104, active, at South) and shares patients in
    PT Direct, and the PMS still has his old record 108 at North, inactive, with the same email in
    another case / When North reconciles / Then nothing transfers or removes Dan. Unscoped, the two
    records of one email are an ambiguity (no removal); scoped, the active one is outside, so the
    identity match sees only the inactive one and Dan departs as 'inactive_in_pms', though the
    exclude list promises this organisation leaves him alone."""
    clinic = Clinic(locations=list(SITES))
    clinic.practitioner("101", "Ana Silva", member=True, locations=("1",))
    clinic.practitioner("102", "Ben Ode", member=True, locations=("1",))
    clinic.co_treat("101", "102", patients=2, location="1")
    clinic.practitioner("104", "Dan Owner", member=True, user=True, locations=("2",))
    clinic.users[-1] = replace(clinic.users[-1], pms_link=None)
    clinic.practitioners.append(
        PmsPractitioner("108", "Dan Owner", "Dan@Clinic.example", False, locations=("1",))
    )
    result = _reconcile_scoped(
        clinic, Scope(locations=("1",), exclude=("104",)), Baseline(frozenset({"101", "102"}))
    )
    assert result is not None
    assert _destructive_for(result, "dan@clinic.example") == []
