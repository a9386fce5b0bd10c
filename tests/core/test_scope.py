"""Scoping an organisation to part of a shared PMS account (clinic groups): the pure core."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sharing import (
    AccessLog,
    AccessSource,
    Baseline,
    PatientAccess,
    PmsLocation,
    PmsPractitioner,
    PmsSnapshot,
    Policy,
    reconcile,
)
from sharing.scope import Scope, ScopeError, apply_scope, location_counts, person_key
from tests.clinic import AS_OF, KEY, Clinic, kinds, of_kind, ops

SINCE = AS_OF - timedelta(days=540)
SITES = [PmsLocation("1", "North"), PmsLocation("2", "South"), PmsLocation("3", "East")]


def group() -> Clinic:
    """Three sites: Ana at North, Ben at North and South, Cara at South, Dan (owner) at East."""
    clinic = Clinic(locations=list(SITES))
    clinic.practitioner("101", "Ana Silva", member=True, locations=("1",))
    clinic.practitioner("102", "Ben Ode", member=False, locations=("1", "2"))
    clinic.practitioner("103", "Cara Lim", member=False, locations=("2",))
    clinic.practitioner("104", "Dan Owner", member=False, locations=("3",))
    clinic.co_treat("101", "102", patients=2, location="1")
    clinic.co_treat("102", "103", patients=2, location="2")
    clinic.co_treat("103", "104", patients=1, location="3")
    return clinic


def scoped(clinic: Clinic, scope: Scope, baseline: Baseline | None = None, policy: Policy | None = None):
    snapshot = apply_scope(clinic.pms(), scope, SINCE)
    return reconcile(
        snapshot, clinic.ptdirect(), policy or Policy(), as_of=AS_OF, pseudonym_key=KEY, baseline=baseline
    )


def test_a_location_scope_keeps_the_practitioners_who_work_there_and_the_access_rows_there():
    """Given a group of three sites / When North's organisation applies its scope / Then only Ana and
    Ben belong, and only the rows at North count (Ben's South patients are not North's)."""
    snapshot = apply_scope(group().pms(), Scope(locations=("1",)), SINCE)
    assert [p.id for p in snapshot.practitioners] == ["101", "102"]
    assert {row.location for row in snapshot.access} == {"1"}
    assert len(snapshot.access) == 4
    assert sorted(p.id for p in snapshot.outside) == ["103", "104"]


def test_out_of_scope_practitioners_are_never_findings_or_operations():
    """Given Cara and Dan work at South and East and have no PT Direct user in North's account /
    When North reconciles / Then every finding and operation is about Ana or Ben (Ben co-treats
    with Ana at North and is not in sharing), none about Cara or Dan."""
    clinic = group()
    clinic.users = [
        user for user in clinic.users if user.email not in ("cara@clinic.example", "dan@clinic.example")
    ]
    result = scoped(clinic, Scope(locations=("1",)))
    assert "duplicate_patient_risk" in kinds(result)
    people = {person.email for finding in result.findings for person in finding.practitioners}
    assert people == {"ana@clinic.example", "ben@clinic.example"}
    assert ops(result) == [("add_sharing_member", "ben@clinic.example")]
    assert result.practitioner_count == 2


def test_a_practitioner_who_only_had_appointments_at_a_site_within_the_window_belongs_there():
    """Given Eve is listed at no site but saw a patient at East 30 days ago / When East applies its
    scope / Then she belongs (as Cara does, who saw a patient there with Dan); a row older than
    the window would not make her belong."""
    clinic = group()
    clinic.practitioner("105", "Eve Locum")
    clinic.co_treat("105", patients=1, days_ago=30, location="3")
    clinic.practitioner("106", "Old Locum")
    clinic.co_treat("106", patients=1, days_ago=600, location="3")
    snapshot = apply_scope(clinic.pms(), Scope(locations=("3",)), SINCE)
    assert [p.id for p in snapshot.practitioners] == ["103", "104", "105"]


def test_include_adds_people_and_exclude_removes_them_by_id_or_any_case_of_email():
    """Given North's scope includes Cara by email (upper case) and excludes Ben by id / When applied /
    Then Ana and Cara belong, and Ben is outside and marked excluded."""
    scope = Scope.of(["1"], ["CARA@Clinic.example "], ["102"])
    snapshot = apply_scope(group().pms(), scope, SINCE)
    assert [p.id for p in snapshot.practitioners] == ["101", "103"]
    assert snapshot.excluded == frozenset({"102"})
    # Cara's South rows do not count at North: only rows at the scope's locations are access
    assert {row.location for row in snapshot.access} == {"1"}


def test_people_lists_without_locations_mean_only_these_or_everyone_but_these():
    """Given no locations / When only an include list, or only an exclude list, is given / Then the
    include list is the whole organisation, and the exclude list takes people out of everyone."""
    only = apply_scope(group().pms(), Scope(include=("101", "102")), SINCE)
    assert [p.id for p in only.practitioners] == ["101", "102"]
    but = apply_scope(group().pms(), Scope(exclude=("dan@clinic.example",)), SINCE)
    assert [p.id for p in but.practitioners] == ["101", "102", "103"]


def test_someone_in_both_lists_is_refused_when_set_and_excluded_when_named_two_ways():
    """Given a person named in include and exclude / When the scope is built / Then it is refused;
    named once by id and once by email (only the PMS knows it is one person) they are excluded."""
    with pytest.raises(ScopeError, match="both included and excluded"):
        Scope.of([], ["Ana@clinic.example"], ["ana@clinic.example"])
    snapshot = apply_scope(group().pms(), Scope(include=("101",), exclude=("ana@clinic.example",)), SINCE)
    assert "101" not in [p.id for p in snapshot.practitioners]
    assert snapshot.excluded == frozenset({"101"})


def test_an_excluded_owner_in_sharing_is_left_alone_never_proposed_or_departed():
    """Given Dan the owner shares patients in PT Direct but is excluded / When North reconciles /
    Then no finding and no operation mentions him."""
    clinic = group()
    clinic.practitioner("107", "Fay Front", locations=("1",), member=True)
    clinic.members.append(type(clinic.members[0])("dan@clinic.example", True, True))
    result = scoped(clinic, Scope(locations=("1",), exclude=("104",)))
    assert all("dan@clinic.example" not in f.subjects[0] for f in result.findings)
    assert all(op.email != "dan@clinic.example" for op in result.operations)


def test_a_member_who_moves_to_another_site_departs_with_every_safeguard():
    """Given Ana shared patients at North and now works only at South / When North reconciles /
    Then she is a departed practitioner (outside_scope): transfer first, removal needs approval."""
    clinic = group()
    clinic.practitioners[0] = PmsPractitioner(
        "101", "Ana Silva", "ana@clinic.example", True, locations=("2",)
    )
    clinic.rows = [row for row in clinic.rows if row.practitioner_id != "101"]
    clinic.members.append(type(clinic.members[0])("ben@clinic.example", True, True))
    result = scoped(clinic, Scope(locations=("1",)), Baseline(frozenset({"101", "102"})))
    [departed] = of_kind(result, "departed_practitioner")
    assert departed.evidence == {"reason": "outside_scope"}
    assert "no longer at this organisation's locations" in departed.message
    moves = [op for op in result.operations if op.email == "ana@clinic.example"]
    assert [op.op.value for op in moves] == ["transfer_patients", "remove_sharing_member"]
    assert all(op.requires_approval for op in moves)


def test_a_move_of_many_at_once_is_held_by_the_mass_departure_threshold():
    """Given North's last trusted run had five active practitioners and four moved to South /
    When North reconciles / Then the read is suspicious: no departure, no removal."""
    clinic = Clinic(locations=list(SITES))
    for index in range(5):
        clinic.practitioner(
            f"2{index}", f"P{index} Person", member=True, locations=("1",) if index == 0 else ("2",)
        )
    result = scoped(clinic, Scope(locations=("1",)), Baseline(frozenset(f"2{i}" for i in range(5))))
    assert kinds(result) == ["suspicious_pms_drop"]
    assert not any(op.op.removal for op in result.operations)


def test_a_location_the_pms_no_longer_has_is_an_error_never_an_empty_organisation():
    """Given the scope names location 9, which the read does not list / When applied / Then a
    ScopeError names it and lists the locations there are."""
    with pytest.raises(ScopeError, match=r"location 9 is not in cliniko .*1 \(North\); 2 \(South\)"):
        apply_scope(group().pms(), Scope(locations=("9",)), SINCE)


def test_a_pms_that_cannot_tell_locations_apart_refuses_a_location_scope_but_allows_people():
    """Given a PMS read without locations / When scoped by location / Then an error; by people: fine."""
    clinic = group()
    clinic.locations = None
    with pytest.raises(ScopeError, match="cannot tell locations apart"):
        apply_scope(clinic.pms(), Scope(locations=("1",)), SINCE)
    assert len(apply_scope(clinic.pms(), Scope(include=("101",)), SINCE).practitioners) == 1


def test_location_counts_give_each_site_its_active_practitioners():
    """Given the group / When counted / Then North 2, South 2, East 2 (Dan, and Cara by a visit)."""
    counts = location_counts(group().pms(), SINCE)
    assert [(c.location.id, c.practitioners) for c in counts] == [("1", 2), ("2", 2), ("3", 2)]


def test_no_scope_is_the_whole_account():
    snapshot = group().pms()
    assert apply_scope(snapshot, Scope(), SINCE) is snapshot


_ids = st.sampled_from(["p1", "p2", "p3", "p4", "p5"])


@settings(max_examples=60, deadline=None)
@given(
    homes=st.lists(st.sets(st.sampled_from(["1", "2", "3"]), max_size=2), min_size=5, max_size=5),
    rows=st.lists(st.tuples(_ids, st.integers(0, 9), st.sampled_from(["1", "2", "3"])), max_size=30),
    locations=st.sets(st.sampled_from(["1", "2", "3"]), max_size=3),
    include=st.sets(_ids, max_size=2),
    exclude=st.sets(_ids, max_size=2),
)
def test_scoping_properties_hold_for_any_group(homes, rows, locations, include, exclude):
    """Given any group, scope and people lists / When applied / Then practitioners are split into
    inside and outside with nobody lost, excluded people are never inside, included (not excluded)
    people always are, and every counted row is an inside practitioner's at a scoped location."""
    include = include - exclude
    practitioners = tuple(
        PmsPractitioner(f"p{i + 1}", f"P{i}", f"p{i + 1}@group.example", True, locations=tuple(sorted(home)))
        for i, home in enumerate(homes)
    )
    access = AccessLog.from_rows(
        PatientAccess(who, f"pt{patient}", AccessSource.APPOINTMENT, AS_OF, location=where)
        for who, patient, where in rows
    )
    snapshot = PmsSnapshot("cliniko", practitioners, access, locations=tuple(SITES))
    result = apply_scope(snapshot, Scope(tuple(sorted(locations)), tuple(include), tuple(exclude)), SINCE)
    inside = {p.id for p in result.practitioners}
    assert inside | {p.id for p in result.outside} == {p.id for p in practitioners}
    assert not inside & {p.id for p in result.outside}
    assert not inside & exclude
    assert include <= inside
    assert result.excluded == frozenset(exclude)
    for row in result.access:
        assert row.practitioner_id in inside
        assert not locations or row.location in locations
    assert person_key(" A@B.example ") == "a@b.example"
