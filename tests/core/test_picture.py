"""The sharing picture of the core: states, pair kinds and team order."""

from __future__ import annotations

import random

from sharing.picture import PairKind, PractitionerState, team_order
from tests.clinic import Clinic, of_kind


def _clinic_with_every_state() -> Clinic:
    clinic = Clinic()
    clinic.practitioner("1", "Ana Silva", member=True)
    clinic.practitioner("2", "Ben Ode", member=True, share_patients=False)
    clinic.practitioner("3", "Cara Lim")
    clinic.practitioner("4", "Dan Roe", confirmed=False)
    clinic.practitioner("5", "Eve Park", user=False)
    clinic.practitioner("6", "Fay Wu", active=False, member=True)
    clinic.practitioner("7", "Gus Hale")
    clinic.master = None
    clinic.content_account("gus@clinic.example")
    for pid in "234567":
        clinic.co_treat("1", pid, patients=2)
    return clinic


def test_each_practitioner_gets_the_first_state_that_applies():
    # Given a clinic with one practitioner in each PT Direct state
    clinic = _clinic_with_every_state()
    # When it is reconciled
    picture = clinic.reconcile().picture
    # Then each practitioner's state is the one the legend describes
    states = {person.name: person.state for person in picture.practitioners}
    assert states == {
        "Ana Silva": PractitionerState.SHARING_PATIENTS,
        "Ben Ode": PractitionerState.CONTENT_ONLY,
        "Cara Lim": PractitionerState.NOT_IN_SHARING,
        "Dan Roe": PractitionerState.UNCONFIRMED,
        "Eve Park": PractitionerState.NO_LICENCE,
        "Fay Wu": PractitionerState.DEPARTED,
        "Gus Hale": PractitionerState.MASTER_ACCOUNT,
    }


def _risk_pairs_of_findings(reconciliation) -> set[frozenset[str]]:
    """Pairs named by duplicate-risk findings, in either shape (per pair, or per practitioner)."""
    pairs = set()
    for finding in of_kind(reconciliation, "duplicate_patient_risk"):
        document = finding.as_dict("new")
        if "pairs" in document["evidence"]:
            pairs |= {frozenset(pair["emails"]) for pair in document["evidence"]["pairs"]}
        else:
            pairs.add(frozenset(person["email"] for person in document["practitioners"]))
    return pairs


def test_a_pair_is_marked_at_risk_exactly_when_a_duplicate_risk_finding_names_it():
    # Given the clinic of every state, where Ana shares patients with everyone
    reconciliation = _clinic_with_every_state().reconcile()
    # When the picture's pairs are compared with the findings
    emails = {person.pms_id: person.email for person in reconciliation.picture.practitioners}
    at_risk = {
        frozenset((emails[pair.first], emails[pair.second]))
        for pair in reconciliation.picture.pairs
        if pair.kind is PairKind.AT_RISK
    }
    # Then the at-risk pairs are exactly those with a duplicate-risk finding
    assert at_risk == _risk_pairs_of_findings(reconciliation)
    names = {person.pms_id: person.name for person in reconciliation.picture.practitioners}
    kinds = {names[pair.second]: pair.kind for pair in reconciliation.picture.pairs}
    assert kinds["Ben Ode"] is PairKind.AT_RISK  # content only
    assert kinds["Cara Lim"] is PairKind.AT_RISK  # not in sharing
    assert kinds["Dan Roe"] is PairKind.OUTSIDE  # unconfirmed: no integration yet
    assert kinds["Eve Park"] is PairKind.OUTSIDE  # no licence
    assert kinds["Fay Wu"] is PairKind.SHARED  # departed, but both still share patients


def test_a_pair_where_both_share_patients_is_shared_and_carries_its_count():
    # Given two practitioners who both share patients and saw 4 patients together
    clinic = Clinic()
    clinic.practitioner("1", "Ana Silva", member=True)
    clinic.practitioner("2", "Ben Ode", member=True)
    clinic.co_treat("1", "2", patients=4)
    # When reconciled
    (pair,) = clinic.reconcile().picture.pairs
    # Then the pair is shared, not at risk, with its count
    assert (pair.kind, pair.shared_patients, pair.at_risk) == (PairKind.SHARED, 4, False)


def test_team_order_puts_every_team_in_one_block():
    # Given 12 teams of 3 to 9 practitioners, shuffled, with heavy pairs inside teams and light ones across
    rng = random.Random(5)
    ids = [f"p{index:03}" for index in range(80)]
    shuffled = ids[:]
    rng.shuffle(shuffled)
    teams, start = [], 0
    while start < len(shuffled):
        size = min(rng.randint(3, 9), len(shuffled) - start)
        teams.append(shuffled[start : start + size])
        start += size
    pairs = [(a, b, rng.randint(5, 40)) for team in teams for i, a in enumerate(team) for b in team[i + 1 :]]
    pairs += [(rng.choice(teams[t]), rng.choice(teams[t + 1]), 1) for t in range(len(teams) - 1)]
    # When ordered
    order = team_order(ids, pairs)
    # Then every id appears once and each team's members sit next to each other
    assert sorted(order) == sorted(ids)
    position = {pid: index for index, pid in enumerate(order)}
    for team in teams:
        places = sorted(position[pid] for pid in team)
        assert places[-1] - places[0] == len(team) - 1, team


def test_team_order_does_not_depend_on_the_order_the_pairs_come_in():
    # Given pairs among 30 practitioners with many tied weights, and the same pairs shuffled
    rng = random.Random(7)
    ids = [f"p{index:02}" for index in range(30)]
    pairs = [(a, b, rng.randint(1, 3)) for i, a in enumerate(ids) for b in ids[i + 1 :] if rng.random() < 0.2]
    shuffled = pairs[:]
    rng.shuffle(shuffled)
    # When both are ordered
    # Then the order is the same: heaviest first, ties by ids, whatever order the pairs came in
    assert team_order(ids, shuffled) == team_order(ids, pairs)


def test_practitioners_without_pairs_come_last():
    # Given three practitioners of whom only two share patients
    order = team_order(["a", "b", "c"], [("b", "c", 3)])
    # Then the loner comes last
    assert order[-1] == "a"
