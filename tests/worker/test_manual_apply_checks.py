"""`--ptdirect manual` must not hand steps to a person without the apply path's checks that the
proposal was planned under the current policy and scope."""

from __future__ import annotations

from sqlalchemy import select

from tests.worker.test_manual_removal_guard import add_manual_clinic, synced_proposal
from worker.actors import apply_proposal
from worker.inprocess import drain
from worker.services import proposals as service
from worker.services import ptdirect_state
from worker.store.models import Organisation, Proposal


def test_a_manual_addition_planned_before_its_person_was_excluded_is_not_a_step_to_do(runtime, tmp_path):
    """Given a manual-mode organisation whose proposal adds Cara to practitioner sharing (she
    would see her colleagues' patients) / When the admin then excludes Cara from the scope and
    approves the old proposal before any sync / Then the checklist must not hand 'add Cara' to
    the person as a step to do: with the API or file adapter the same proposal is superseded
    ('policy or scope changed'), but `_wait_for_person` returns before `_load` and never looks at
    the digest or the current plan, so the row becomes 'manual' and mark-applied records it."""
    add_manual_clinic(runtime, tmp_path)
    proposal_id = synced_proposal(runtime)
    steps = service.checklist_steps(runtime, proposal_id).steps
    assert any("cara@clinic.example" in step.text for step in steps)
    with runtime.db.transaction() as session:
        session.scalar(select(Organisation)).exclude_people = "103"
    service.approve(runtime, proposal_id, "admin")
    apply_proposal.send(proposal_id)
    drain()
    checklist = service.checklist_steps(runtime, proposal_id)
    cara = [step for step in checklist.steps if "cara@clinic.example" in step.text]
    assert checklist.status == "superseded" or all(step.status != "manual" for step in cara), (
        checklist.status,
        [(step.text, step.status) for step in checklist.steps],
    )


def test_a_removal_confirmed_on_a_carried_over_proposal_becomes_a_step(runtime, tmp_path):
    """Given a manual-mode proposal to transfer Dan's patients and remove him (inactive in the
    PMS), approved with the transfer confirmed / When PT Direct's recorded state changes in an
    unrelated way before the replan sync (another admin imports a fresh state with a new
    admin user) and the apply job and the sync it asks for run / Then the removal, whose
    approval the new proposal carries and whose sync came after that approval, is a step to do
    by hand. Before the fix, the sync makes a new, already approved proposal whose rows are 'pending', and
    the apply it queues (`automatic_only`) only hands over rows that are 'waiting', so the
    removal is never handed to anyone and nothing asks again."""
    _, state = add_manual_clinic(runtime, tmp_path, departed=True)
    proposal_id = synced_proposal(runtime)
    service.approve(runtime, proposal_id, "admin", transferred=True)
    extra = dict(next(u for u in state["users"] if u["email"] == "ben@clinic.example"))
    extra.update(email="zed.admin@clinic.example", name="Zed Admin")
    extra.pop("pms_link", None)
    state["users"].append(extra)
    ptdirect_state.record(runtime, "clinic-a", state, "bo", "import", "pt2.json")
    apply_proposal.send(proposal_id)
    drain()
    with runtime.db.transaction() as session:
        latest = session.scalars(select(Proposal).order_by(Proposal.created_at.desc())).first()
        latest_id = latest.id
    steps = service.checklist_steps(runtime, latest_id)
    removal = [s for s in steps.steps if "dan@clinic.example" in s.text and "Untick" in s.text]
    assert removal and removal[0].status == "manual", (
        latest_id != proposal_id,
        steps.status,
        [(s.text[:60], s.status) for s in steps.steps],
    )
