"""Review: the proposal digest now covers the scope; an unchanged scope must keep its digest,
or every approved proposal is superseded at apply instead of sent."""

from __future__ import annotations

from sharing import Policy
from worker.services.org_scope import scope_from
from worker.services.settle import policy_digest


def test_the_same_locations_and_people_in_another_order_keep_the_digest():
    """Given an organisation whose scope is North and South with Ana and Ben excluded / When an
    admin re-enters the same scope in another order (`org update --locations 2,1`, or a form
    that lists ticked locations in page order) / Then the digest is unchanged: the plan's people
    are the same sets. Before the fix, `Scope.as_dict` keeps input order, so the digest changes and every
    approved proposal is superseded at apply ('policy or scope changed') for nothing."""
    before = scope_from("1,2", None, "ana@clinic.example,104")
    after = scope_from("2, 1", None, "104,Ana@Clinic.example")
    assert policy_digest(Policy(), before) == policy_digest(Policy(), after)
