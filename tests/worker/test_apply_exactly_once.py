"""Applying through the PT Direct bridge: crash anywhere, redeliver, and every change is made once."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from sqlalchemy import select

from connectors.emulators.ptdirect_bridge import PtDirectBridgeEmulator
from connectors.ptdirect_api import PtDirectApiAdapter
from sharing import Operation
from tests.clinic_files import write_clinic
from worker.services import proposals as service
from worker.services.orgs import NewOrganisation, add_organisation
from worker.services.sync import request_sync, run_sync
from worker.store.models import Proposal

OPS_PER_STEP = 4  # mark applying, before sending, after sending, mark applied


class Crash(BaseException):
    """Stands for the process dying: nothing in the apply path may catch it."""


def _bridge_state(ptdirect_file) -> dict:
    state = json.loads(ptdirect_file.read_text())
    state["users"].append(
        {
            "email": "content@clinic.example",
            "name": "Content",
            "status": "confirmed",
            "practitioner_access": True,
            "pms_link": None,
        }
    )
    state["master_account"] = {
        "email": "content@clinic.example",
        "recipients": ["ana@clinic.example", "ben@clinic.example"],
    }
    state["practitioner_sharing"]["members"][1]["share_patients"] = False  # Ben shares content only
    return state


@pytest.fixture
def bridge(tmp_path):
    _, ptdirect_file = write_clinic(tmp_path)
    with PtDirectBridgeEmulator(_bridge_state(ptdirect_file), "bridge-key") as emulator:
        yield emulator


@pytest.fixture
def proposal_id(runtime, bridge, tmp_path):
    add_organisation(
        runtime,
        NewOrganisation(
            slug="clinic-a",
            pms="csv",
            pms_path=str(tmp_path / "pms"),
            ptdirect="api",
            ptdirect_url=f"{bridge.url}/v1",
            ptdirect_key="bridge-key",
        ),
    )
    run_id, _ = request_sync(runtime, "clinic-a", "manual")
    assert run_sync(runtime, run_id).status == "succeeded"
    with runtime.db.transaction() as session:
        proposal = session.scalar(select(Proposal))
        assert [op.op for op in proposal.operations] == [
            "add_sharing_member",
            "enable_patient_sharing",
            "add_master_recipient",
        ]
        identifier = proposal.id
    service.approve(runtime, identifier, "test-admin")
    return identifier


def _inject_crash(monkeypatch, crash_at: int) -> None:
    ticks = {"count": 0}

    def tick() -> None:
        ticks["count"] += 1
        if ticks["count"] == crash_at:
            raise Crash()

    real_mark = service._Step.mark

    def mark(self, row_id, status, **kwargs):
        real_mark(self, row_id, status, **kwargs)
        tick()

    real_factory = service.ptdirect_adapter

    class CrashingAdapter:
        def __init__(self, inner):
            self.inner = inner

        def read(self):
            return self.inner.read()

        def apply(self, operation, *, idempotency_key):
            tick()
            self.inner.apply(operation, idempotency_key=idempotency_key)
            tick()

    monkeypatch.setattr(service._Step, "mark", mark)
    monkeypatch.setattr(
        service, "ptdirect_adapter", lambda org, secrets: CrashingAdapter(real_factory(org, secrets))
    )


@pytest.mark.parametrize("crash_at", range(1, 3 * OPS_PER_STEP + 1))
def test_an_apply_interrupted_after_any_step_and_redelivered_makes_each_change_exactly_once(
    runtime, bridge, proposal_id, monkeypatch, crash_at
):
    # Given an approved proposal of three changes, and a crash injected after step `crash_at`
    with monkeypatch.context() as patch:
        _inject_crash(patch, crash_at)
        # When the apply is interrupted there
        with pytest.raises(Crash):
            service.apply(runtime, proposal_id)
    # And the message is redelivered three times
    outcomes = [service.apply(runtime, proposal_id) for _ in range(3)]
    # Then every change was made exactly once, and the proposal is applied
    assert dict(bridge.changes) == {
        ("add_sharing_member", "cara@clinic.example"): 1,
        ("enable_patient_sharing", "ben@clinic.example"): 1,
        ("add_master_recipient", "cara@clinic.example"): 1,
    }
    # And, counting every request the bridge received (not only those that changed its state),
    # each change was written once, or twice only when the crash fell between sending it and
    # recording it (tick 3 or 4 of its step), then always with its first Idempotency-Key;
    # nothing else was written (every other request was a read)
    writes = [(r.method, r.path, r.headers.get("idempotency-key")) for r in bridge.log if r.method != "GET"]
    sent = Counter((method, path) for method, path, _ in writes)
    assert len(sent) == 3
    crashed_step, tick_in_step = divmod(crash_at - 1, OPS_PER_STEP)
    for step, times in enumerate(sent.values()):
        may_repeat = step == crashed_step and tick_in_step >= 2
        assert times == 1 or (times == 2 and may_repeat), (step, times)
    assert len({key for _, _, key in writes}) == 3, "a re-sent write reuses its Idempotency-Key"
    assert all(r.method == "GET" for r in bridge.log if (r.method, r.path) not in sent)
    assert outcomes[0].status == "applied"
    with runtime.db.transaction() as session:
        proposal = session.get(Proposal, proposal_id)
        assert proposal.status == "applied"
        assert {op.status for op in proposal.operations} == {"applied"}


def test_the_next_sync_after_applying_verifies_the_result_and_proposes_nothing(runtime, bridge, proposal_id):
    service.apply(runtime, proposal_id)
    run_id, _ = request_sync(runtime, "clinic-a", "manual")
    run_sync(runtime, run_id)
    with runtime.db.transaction() as session:
        proposal = session.get(Proposal, proposal_id)
        assert proposal.status == "applied" and proposal.verified_at is not None
        assert session.scalar(select(Proposal).where(Proposal.id != proposal_id)) is None


def test_a_proposal_marked_applied_by_hand_is_confirmed_when_the_change_is_there(
    runtime, bridge, proposal_id
):
    # Given an admin who followed the checklist in the PT Direct console
    console = PtDirectApiAdapter(f"{bridge.url}/v1", "bridge-key")
    with runtime.db.transaction() as session:
        planned = [Operation.from_dict(op.document) for op in session.get(Proposal, proposal_id).operations]
    for position, operation in enumerate(planned):
        console.apply(operation, idempotency_key=f"by-hand:{position}")
    # When they mark it applied and the next sync runs
    service.mark_applied_by_hand(runtime, proposal_id, "admin")
    run_id, _ = request_sync(runtime, "clinic-a", "manual")
    run_sync(runtime, run_id)
    with runtime.db.transaction() as session:
        assert session.get(Proposal, proposal_id).status == "applied"


def test_a_proposal_marked_applied_by_hand_is_reopened_when_the_change_is_missing(
    runtime, bridge, proposal_id
):
    steps = service.checklist_steps(runtime, proposal_id).steps
    assert len(steps) == 3 and "Practitioner sharing" in steps[0].text
    service.mark_applied_by_hand(runtime, proposal_id, "admin")  # but nothing was done
    run_id, _ = request_sync(runtime, "clinic-a", "manual")
    run_sync(runtime, run_id)
    with runtime.db.transaction() as session:
        proposal = session.get(Proposal, proposal_id)
        assert proposal.status == "reopened"
        assert "add_sharing_member cara@clinic.example" in proposal.error


def test_a_rejected_proposal_is_never_applied_and_cannot_be_approved_again(runtime, bridge, proposal_id):
    service.reject(runtime, proposal_id, "admin")
    assert service.apply(runtime, proposal_id).status == "rejected"
    assert not bridge.changes
    with pytest.raises(Exception, match="is rejected and cannot be approved"):
        service.approve(runtime, proposal_id, "admin")
