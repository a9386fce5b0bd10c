"""Clinic groups: a PMS that lists where a practitioner works does not make a site that began
after the organisation's sites stopped into evidence of a move (sharing/scope.py `_newer_sites`):
found by a review of the rule, which first looked only at appointment rows."""

from __future__ import annotations

from sharing import Baseline, FindingKind, PmsLocation, Policy, reconcile
from sharing.scope import Scope, apply_scope
from tests.clinic import AS_OF, KEY, Clinic
from tests.core.test_scope_edges import SINCE

NORTH, SOUTH, NEW_SITE = "1", "2", "3"


def _north_with_cara_at_a_newer_site(*, listed: bool):
    """North (1) whose counted rows end 40 days ago, South (2) in use all along, site 3 first
    used 30 days ago, and Cara, a sharing member with rows only at site 3; `listed`: the PMS
    also lists where each practitioner works. Returns Cara's email and North's reconcile."""
    clinic = Clinic(
        system="cliniko", locations=[PmsLocation(site, f"Site {site}") for site in (NORTH, SOUTH, NEW_SITE)]
    )

    def where(site: str) -> tuple[str, ...]:
        return (site,) if listed else ()

    clinic.practitioner("ann@clinic.example", "Ann Lee", member=True, locations=where(NORTH))
    clinic.practitioner("ben@clinic.example", "Ben Ode", member=True, locations=where(NORTH))
    clinic.co_treat("ann@clinic.example", "ben@clinic.example", patients=3, location=NORTH, days_ago=40)
    clinic.practitioner("sam@clinic.example", "Sam South", member=False, locations=where(SOUTH))
    clinic.co_treat("sam@clinic.example", patients=2, location=SOUTH, days_ago=300)
    clinic.co_treat("sam@clinic.example", patients=2, location=SOUTH, days_ago=2)
    cara = clinic.practitioner("cara@clinic.example", "Cara Lim", member=True, locations=where(NEW_SITE))
    clinic.co_treat(cara, "ann@clinic.example", patients=2, location=NEW_SITE, days_ago=30)
    clinic.co_treat(cara, patients=2, location=NEW_SITE, days_ago=5)
    snapshot = apply_scope(clinic.pms(), Scope(locations=(NORTH,)), SINCE)
    active = frozenset(p.id for p in snapshot.practitioners if p.active)
    return cara, reconcile(
        snapshot, clinic.ptdirect(), Policy(), as_of=AS_OF, pseudonym_key=KEY, baseline=Baseline(active)
    )


def test_a_member_listed_only_at_a_site_that_began_after_north_stopped_is_held_not_departed():
    """Given a PMS that lists the sites each practitioner works at (as Cliniko and Nookal do),
    North (location 1) whose counted rows end 40 days ago, South (2) in use all along, and a
    site 3 first used 30 days ago, and Cara, a sharing member listed as working at site 3 only
    and with rows there only,
    When North reconciles with --locations 1,
    Then Cara is not transferred nor removed: the README says a site first used on or after the
    day North was last used is not evidence of a move, and a member the read places only at
    such a site gets an `ambiguous_match` (`outside_scope_newer_site`), as she does when the PMS
    does not list her sites (the rows alone)."""
    cara, result = _north_with_cara_at_a_newer_site(listed=True)
    assert [op.op for op in result.operations if op.email == cara] == []
    assert not [f for f in result.findings if f.kind is FindingKind.DEPARTED_PRACTITIONER]
    held = [f for f in result.findings if f.kind is FindingKind.AMBIGUOUS_MATCH]
    assert [f.evidence.get("reason") for f in held] == ["outside_scope_newer_site"]


def test_the_same_member_without_a_site_listing_is_held():
    """Given the same clinic but a PMS that does not list practitioners' sites (rows only),
    When North reconciles with --locations 1,
    Then Cara is held with `outside_scope_newer_site` and nothing is proposed for her (the
    control case: only the listing differs from the test above)."""
    cara, result = _north_with_cara_at_a_newer_site(listed=False)
    assert [op.op for op in result.operations if op.email == cara] == []
    held = [f for f in result.findings if f.kind is FindingKind.AMBIGUOUS_MATCH]
    assert [f.evidence.get("reason") for f in held] == ["outside_scope_newer_site"]
