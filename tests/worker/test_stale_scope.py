"""Stale plans, adversarially: a proposal planned under one scope must not be applied under
another (clinic groups). The policy digest guards mode, sharing scope and thresholds, but not
the organisation's locations and people lists, which decide just as much who is in the plan."""

from __future__ import annotations

from sqlalchemy import select

from tests.worker.test_stale_proposals import _add, _join, _members, _proposals, _sync, stub_worker  # noqa: F401
from worker import actors
from worker.services import proposals as proposal_service
from worker.store.models import Organisation


def test_an_addition_planned_before_its_person_was_excluded_is_not_applied(runtime, stub_worker, tmp_path):  # noqa: F811
    """Given a proposal to add Cara to practitioner sharing (she would see her colleagues'
    patients) / When the admin then excludes Cara from the organisation's scope, and an
    approval of the old proposal arrives before any sync / Then Cara is not added: the current
    settings no longer call for it (as with a policy change, the proposal is superseded and a
    sync re-plans)."""
    _, ptdirect = _add(runtime, tmp_path)
    _sync(stub_worker)
    [proposal] = _proposals(runtime)
    assert [row.email for row in proposal.operations] == ["cara@clinic.example"]
    with runtime.db.transaction() as session:
        session.scalar(select(Organisation)).exclude_people = "103"
    proposal_service.approve(runtime, proposal.id, "admin")
    actors.apply_proposal.send(proposal.id)
    _join(stub_worker)
    assert "cara@clinic.example" not in _members(ptdirect)
