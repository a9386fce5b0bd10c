"""One test per policy switch: mode, sharing scope, master recipients, lookback, completeness."""

from __future__ import annotations

from sharing import MasterAccount, MasterRecipients, Mode, Policy, SharingScope
from tests.clinic import Clinic, of_kind, ops


def _clinic_with_a_newcomer_and_a_leaver() -> tuple[Clinic, str, str]:
    clinic = Clinic()
    clinic.content_account()
    clinic.practitioner("101", "Ana Silva", member=True)
    eve = clinic.practitioner("105", "Eve Park", member=False, recipient=False)
    dan = clinic.practitioner("104", "Dan Roe", member=True, active=False)
    clinic.co_treat("101", "105")
    return clinic, eve, dan


def test_observe_mode_reports_findings_but_plans_nothing():
    clinic, _, _ = _clinic_with_a_newcomer_and_a_leaver()
    result = clinic.reconcile(Policy(mode=Mode.OBSERVE))
    assert of_kind(result, "duplicate_patient_risk")
    assert result.operations == ()


def test_propose_mode_puts_every_operation_up_for_approval():
    clinic, _, _ = _clinic_with_a_newcomer_and_a_leaver()
    result = clinic.reconcile(Policy(mode=Mode.PROPOSE))
    assert result.operations
    assert all(op.requires_approval for op in result.operations)


def test_apply_safe_applies_additions_unasked_but_removals_still_wait():
    # Given a newcomer to add and a leaver to remove
    clinic, eve, dan = _clinic_with_a_newcomer_and_a_leaver()
    # When the policy is apply-safe
    result = clinic.reconcile(Policy(mode=Mode.APPLY_SAFE))
    # Then additions need no approval, while the removal and the transfer do
    approval = {(op.op.value, op.email): op.requires_approval for op in result.operations}
    assert approval[("add_sharing_member", eve)] is False
    assert approval[("add_master_recipient", eve)] is False
    assert approval[("remove_sharing_member", dan)] is True
    assert approval[("transfer_patients", dan)] is True


def test_co_treating_scope_leaves_practitioners_who_share_no_patients_out_of_sharing():
    clinic = Clinic()
    clinic.practitioner("101", "Ana Silva", member=True)
    solo = clinic.practitioner("108", "Hal Solo", member=False)
    result = clinic.reconcile(Policy(sharing_scope=SharingScope.CO_TREATING))
    assert ("add_sharing_member", solo) not in ops(result)
    assert of_kind(result, "missing_new_user") == []


def test_everyone_scope_puts_every_active_confirmed_practitioner_in_sharing():
    clinic = Clinic()
    clinic.content_account()
    clinic.practitioner("101", "Ana Silva", member=True)
    solo = clinic.practitioner("108", "Hal Solo", member=False)
    result = clinic.reconcile(Policy(sharing_scope=SharingScope.EVERYONE))
    assert ("add_sharing_member", solo) in ops(result)
    assert ("add_sharing_member", "content@clinic.example") not in ops(result)
    [missing] = of_kind(result, "missing_new_user")
    assert missing.practitioners[0].email == solo


def test_all_active_master_recipients_adds_new_and_proposes_removing_leavers():
    clinic, eve, dan = _clinic_with_a_newcomer_and_a_leaver()
    clinic.master = MasterAccount(clinic.master.email, ("ana@clinic.example", dan))
    result = clinic.reconcile(Policy(master_recipients=MasterRecipients.ALL_ACTIVE))
    assert ("add_master_recipient", eve) in ops(result)
    assert ("remove_master_recipient", dan) in ops(result)


def test_manual_master_recipients_leaves_the_recipient_list_alone():
    clinic, _, dan = _clinic_with_a_newcomer_and_a_leaver()
    clinic.master = MasterAccount(clinic.master.email, ("ana@clinic.example", dan))
    result = clinic.reconcile(Policy(master_recipients=MasterRecipients.MANUAL))
    assert not [op for op in result.operations if "master" in op.op.value]
    assert [
        f for f in of_kind(result, "missing_new_user") if f.evidence["missing_from"] == "master_recipients"
    ] == []


def test_a_shorter_lookback_window_ignores_older_shared_patients():
    clinic = Clinic()
    clinic.practitioner("101", "Ana Silva", member=True)
    clinic.practitioner("102", "Ben Ode", member=False)
    clinic.co_treat("101", "102", days_ago=100)
    assert of_kind(clinic.reconcile(Policy(lookback_days=540)), "duplicate_patient_risk")
    assert of_kind(clinic.reconcile(Policy(lookback_days=90)), "duplicate_patient_risk") == []


def test_incomplete_pms_fetch_plans_no_removals_but_keeps_additions():
    # Given a PMS fetch that failed part-way
    clinic, eve, _ = _clinic_with_a_newcomer_and_a_leaver()
    clinic.pms_complete = False
    # When the run reconciles
    result = clinic.reconcile()
    # Then nothing is removed or transferred, and the run says it is incomplete
    assert not result.complete
    assert not [op for op in result.operations if op.op.removal or op.op.value == "transfer_patients"]
    assert ("add_sharing_member", eve) in ops(result)


def test_incomplete_ptdirect_fetch_plans_no_removals():
    clinic, _, _ = _clinic_with_a_newcomer_and_a_leaver()
    clinic.ptdirect_complete = False
    result = clinic.reconcile()
    assert not [op for op in result.operations if op.op.removal]
