"""Stale plans: every complete run settles the open proposals, and applying re-checks the plan.

Each test is an adversary's scenario for a change of access: a stale plan, a policy changed
after planning, a leaver who came back, an approval that must survive re-planning.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import dramatiq
import pytest
from sqlalchemy import select

from tests.clinic_files import add_departed_member, write_clinic
from worker import actors
from worker.errors import InvalidInput
from worker.services import proposals as proposal_service
from worker.services.orgs import NewOrganisation, add_organisation
from worker.store.models import Organisation, Proposal, ProposalOperation, Run


@pytest.fixture
def stub_worker(runtime):
    broker = actors.broker
    broker.flush_all()
    worker = dramatiq.Worker(broker, worker_timeout=50, worker_threads=2)
    worker.start()
    yield broker
    worker.stop()
    broker.flush_all()


def _join(broker) -> None:
    broker.join("default", fail_fast=False, timeout=30_000)


def _sync(broker) -> None:
    actors.request_sync.send("clinic-a", "manual")
    _join(broker)


def _add(runtime, tmp_path: Path, **settings) -> tuple[Path, Path]:
    pms, ptdirect = write_clinic(tmp_path)
    add_organisation(
        runtime,
        NewOrganisation(
            slug="clinic-a",
            pms="csv",
            pms_path=str(pms),
            ptdirect="file",
            ptdirect_path=str(ptdirect),
            **settings,
        ),
    )
    return pms, ptdirect


def _proposals(runtime) -> list[Proposal]:
    with runtime.db.transaction() as session:
        found = list(session.scalars(select(Proposal).order_by(Proposal.created_at)))
        for proposal in found:
            _ = proposal.operations  # loaded before the session closes
        return found


def _members(ptdirect: Path) -> list[str]:
    return [m["email"] for m in json.loads(ptdirect.read_text())["practitioner_sharing"]["members"]]


def _add_departed_dan(pms: Path, ptdirect: Path, *, active: bool) -> None:
    """Dan shares patients in PT Direct and has one appointment in the PMS."""
    add_departed_member(pms, ptdirect, active=active)
    with (pms / "patient_access.csv").open("a", newline="") as handle:
        csv.writer(handle).writerow(["104", "p1", "appointment", "2026-01-05"])


def _set_active(pms: Path, pid: str, active: bool) -> None:
    lines = (pms / "practitioners.csv").read_text().splitlines()
    fixed = []
    for line in lines:
        parts = line.split(",")
        if parts[0] == pid:
            parts[3] = "true" if active else "false"
        fixed.append(",".join(parts))
    (pms / "practitioners.csv").write_text("\n".join(fixed) + "\n")


def test_a_run_that_finds_nothing_to_do_closes_the_open_proposal(runtime, stub_worker, tmp_path):
    # Given a proposal to add Cara, and an admin who then added her in PT Direct by hand
    _, ptdirect = _add(runtime, tmp_path)
    _sync(stub_worker)
    [proposal] = _proposals(runtime)
    document = json.loads(ptdirect.read_text())
    document["practitioner_sharing"]["members"].append(
        {"email": "cara@clinic.example", "share_content": True, "share_patients": True}
    )
    ptdirect.write_text(json.dumps(document))
    # When the next run finds nothing to do
    _sync(stub_worker)
    # Then the old proposal is closed with a reason, and approving it later is refused
    [closed] = _proposals(runtime)
    assert closed.status == "superseded"
    assert "nothing left to change" in closed.error
    assert {row.status for row in closed.operations} == {"closed"}
    with pytest.raises(InvalidInput, match="superseded"):
        proposal_service.approve(runtime, proposal.id, "admin")


def test_a_removal_approved_while_departed_is_never_sent_after_the_practitioner_returns(
    runtime, stub_worker, tmp_path
):
    # Given Dan looked departed: a proposal to transfer his patients and remove him
    pms, ptdirect = _add(runtime, tmp_path)
    _add_departed_dan(pms, ptdirect, active=False)
    _sync(stub_worker)
    [proposal] = [
        p for p in _proposals(runtime) if any(r.op == "remove_sharing_member" for r in p.operations)
    ]
    # When he comes back from leave (the PMS shows him active) and the admin, not knowing, approves
    # with the transfer confirmed, before any sync has run
    _set_active(pms, "104", True)
    proposal_service.approve(runtime, proposal.id, "admin", transferred=True)
    actors.apply_proposal.send(proposal.id)
    _join(stub_worker)
    # Then the removal is never sent: the confirming sync no longer calls for it
    assert "dan@clinic.example" in _members(ptdirect)
    with runtime.db.transaction() as session:
        removal = session.scalar(
            select(ProposalOperation).where(
                ProposalOperation.proposal_id == proposal.id, ProposalOperation.op == "remove_sharing_member"
            )
        )
        assert removal.status == "closed"


def test_a_removal_is_applied_once_a_sync_after_the_approval_confirms_it(runtime, stub_worker, tmp_path):
    # Given Dan really left and shares patients
    pms, ptdirect = _add(runtime, tmp_path)
    _add_departed_dan(pms, ptdirect, active=False)
    _sync(stub_worker)
    [proposal] = _proposals(runtime)
    # When the admin approves with the transfer confirmed
    proposal_service.approve(runtime, proposal.id, "admin", transferred=True)
    actors.apply_proposal.send(proposal.id)
    _join(stub_worker)
    # Then a confirming sync ran and the removal went out (Cara's addition too)
    members = _members(ptdirect)
    assert "dan@clinic.example" not in members and "cara@clinic.example" in members
    assert any(run.trigger == "replan" for run in _runs(runtime))


def test_an_approval_carries_over_when_the_next_run_plans_the_same_change(runtime, stub_worker, tmp_path):
    # Given a proposal to add Cara, approved but not applied yet (no worker picked it up)
    _, ptdirect = _add(runtime, tmp_path)
    _sync(stub_worker)
    [first] = _proposals(runtime)
    proposal_service.approve(runtime, first.id, "admin")
    # When PT Direct changes elsewhere (a new user is invited) and the hourly sync runs
    document = json.loads(ptdirect.read_text())
    document["users"].append(
        {"email": "zed@clinic.example", "name": "Zed", "status": "unconfirmed", "practitioner_access": True}
    )
    ptdirect.write_text(json.dumps(document))
    _sync(stub_worker)
    # Then the new proposal carries the approval of Cara's addition, which is applied without asking again
    proposals = _proposals(runtime)
    assert proposals[0].status == "superseded" and proposals[0].superseded_by == proposals[-1].id
    assert "cara@clinic.example" in _members(ptdirect)
    rows = {row.email: row for row in proposals[-1].operations}
    assert rows["cara@clinic.example"].approved_by == "admin"


def test_a_proposal_planned_under_another_policy_is_not_applied(runtime, stub_worker, tmp_path):
    # Given a proposal made under the default policy
    _, ptdirect = _add(runtime, tmp_path)
    _sync(stub_worker)
    [proposal] = _proposals(runtime)
    # When the organisation switches to report only, and an old approval arrives
    with runtime.db.transaction() as session:
        session.scalar(select(Organisation)).mode = "observe"
    proposal_service.approve(runtime, proposal.id, "admin")
    actors.apply_proposal.send(proposal.id)
    _join(stub_worker)
    # Then nothing is sent and the proposal says why
    assert "cara@clinic.example" not in _members(ptdirect)
    [after] = [p for p in _proposals(runtime) if p.id == proposal.id]
    assert after.status == "superseded" and "policy or scope changed" in after.error


def test_an_identical_plan_keeps_its_proposal_across_runs(runtime, stub_worker, tmp_path):
    # Given a proposal
    _add(runtime, tmp_path)
    _sync(stub_worker)
    # When two more runs find exactly the same
    _sync(stub_worker)
    _sync(stub_worker)
    # Then there is still one open proposal, re-confirmed by the latest run
    [proposal] = _proposals(runtime)
    assert proposal.status == "proposed"
    latest = _runs(runtime)[-1]
    assert latest.report["proposal"]["id"] == proposal.id
    assert proposal.confirmed_at >= latest.finished_at


def test_a_pms_export_that_lost_everyone_is_suspicious_until_the_drop_is_accepted(
    runtime, stub_worker, tmp_path
):
    # Given a clinic synced once, then an export that lists only Ana (2 of 3 people gone)
    pms, _ = _add(runtime, tmp_path, removal_threshold=30, removal_threshold_people=1)
    _sync(stub_worker)
    (pms / "practitioners.csv").write_text(
        "id,name,email,active,updated_at\n101,Ana Silva,ana@clinic.example,true,\n"
    )
    (pms / "patient_access.csv").write_text("practitioner_id,patient_id,source,last_seen\n")
    # When it syncs
    _sync(stub_worker)
    # Then the run is marked suspicious, reports the drop and proposes no removal
    suspicious = _runs(runtime)[-1]
    assert suspicious.counts["suspicious"] is True
    assert [f["kind"] for f in suspicious.report["findings"] if f["severity"] == "high"] == [
        "suspicious_pms_drop"
    ]
    assert not [
        op for op in (suspicious.report["proposal"] or {}).get("operations", []) if "remove" in op["op"]
    ]
    # When the admin accepts the drop
    from worker.services.sync import request_sync

    run_id, _ = request_sync(runtime, "clinic-a", "manual", accept_drop=True)
    actors.sync_org.send(run_id)
    _join(stub_worker)
    # Then Ben is departed and his removal is proposed behind the transfer
    accepted = _runs(runtime)[-1]
    assert "departed_practitioner" in {f["kind"] for f in accepted.report["findings"]}
    assert "remove_sharing_member" in {op["op"] for op in accepted.report["proposal"]["operations"]}


def _runs(runtime) -> list[Run]:
    with runtime.db.transaction() as session:
        return list(session.scalars(select(Run).order_by(Run.requested_at)))


def test_marking_steps_of_a_replaced_proposal_names_the_proposal_to_record_them_on(
    runtime, stub_worker, tmp_path
):
    """Given a proposal replaced by a newer sync's (PT Direct changed meanwhile); When a person who
    followed the old checklist marks it applied; Then nothing is recorded and the one line names
    the proposal that now holds those steps, and the commands to record them there."""
    _, ptdirect = _add(runtime, tmp_path)
    _sync(stub_worker)
    [first] = _proposals(runtime)
    document = json.loads(ptdirect.read_text())
    document["users"].append(
        {"email": "zed@clinic.example", "name": "Zed", "status": "unconfirmed", "practitioner_access": True}
    )
    ptdirect.write_text(json.dumps(document))
    _sync(stub_worker)
    old, current = _proposals(runtime)[0], _proposals(runtime)[-1]
    assert old.id == first.id and old.superseded_by == current.id
    with pytest.raises(InvalidInput) as refused:
        proposal_service.mark_applied_by_hand(runtime, first.id, "admin")
    assert f"its current form is proposal {current.id}" in str(refused.value)
    assert f"`ptsync mark-applied {current.id}`" in str(refused.value)
    assert all(row.status != "applied" for row in _proposals(runtime)[0].operations)
