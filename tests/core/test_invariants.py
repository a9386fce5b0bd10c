"""Property tests of the planning invariants (pure, convergent, never touching unconfirmed users or
the master account, no removals from an incomplete fetch), on generated clinics."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sharing import (
    AccessGroup,
    AccessLog,
    AccessSource,
    AccessStatus,
    MasterAccount,
    MasterRecipients,
    Mode,
    PatientAccess,
    PmsLink,
    PmsPractitioner,
    PmsSnapshot,
    Policy,
    PtDirectSnapshot,
    PtUser,
    RunInfo,
    SharingMember,
    SharingScope,
    UserStatus,
    apply_operations,
    build_report,
    reconcile,
)
from sharing.apply import still_called_for
from sharing.context import build_context
from sharing.identity import normalise_email
from sharing.operations import OpKind
from tests.clinic import AS_OF, KEY

practitioner_strategy = st.fixed_dictionaries(
    {
        "active": st.booleans(),
        "user": st.sampled_from(["linked", "email", "none"]),
        "confirmed": st.booleans(),
        "practitioner_access": st.booleans(),
        "membership": st.sampled_from(["none", "content", "patients"]),
        "recipient": st.booleans(),
        "email_case": st.sampled_from(["lower", "upper"]),
    }
)

row_strategy = st.tuples(
    st.integers(0, 7),  # practitioner index
    st.integers(0, 12),  # patient
    st.integers(-5, 700),  # days ago
    st.sampled_from(list(AccessStatus)),
    st.sampled_from(list(AccessSource)),
)


@st.composite
def clinics(draw):
    people = draw(st.lists(practitioner_strategy, min_size=1, max_size=8))
    practitioners, users, members, recipients = [], [], [], []
    for index, person in enumerate(people):
        pid = f"{index + 100}"
        email = f"p{index}@clinic.example"
        pms_email = email.upper() if person["email_case"] == "upper" else email
        practitioners.append(PmsPractitioner(pid, f"Person {index}", pms_email, person["active"]))
        if person["user"] == "none":
            continue
        link = PmsLink("cliniko", pid) if person["user"] == "linked" else None
        status = UserStatus.CONFIRMED if person["confirmed"] else UserStatus.UNCONFIRMED
        users.append(PtUser(email, f"Person {index}", status, person["practitioner_access"], link))
        if person["membership"] != "none":
            members.append(SharingMember(email, True, person["membership"] == "patients"))
        if person["recipient"]:
            recipients.append(email)
    if draw(st.booleans()):  # a leaver linked to a practitioner the PMS no longer has
        users.append(PtUser("gone@clinic.example", "Gone", pms_link=PmsLink("cliniko", "999")))
        members.append(SharingMember("gone@clinic.example", True, draw(st.booleans())))
    master_choice = draw(st.sampled_from(["none", "content", "practitioner"]))
    master = None
    if master_choice == "content":
        users.append(PtUser("content@clinic.example", "Content"))
        if draw(st.booleans()):
            members.append(SharingMember("content@clinic.example", True, True))
        master = MasterAccount("content@clinic.example", tuple(recipients))
    elif master_choice == "practitioner" and users:
        master = MasterAccount(users[0].email, tuple(recipients))
    rows = [
        PatientAccess(
            f"{index % len(people) + 100}", f"pat-{patient}", source, AS_OF - timedelta(days=days_ago), status
        )
        for index, patient, days_ago, status, source in draw(st.lists(row_strategy, max_size=40))
    ]
    groups = ()
    if len(people) > 2 and draw(st.booleans()):
        groups = (AccessGroup("g", "Team", ("100", "101")),)
    pms = PmsSnapshot("cliniko", tuple(practitioners), AccessLog.from_rows(rows), groups)
    ptdirect = PtDirectSnapshot(tuple(users), master, tuple(members))
    policy = Policy(
        mode=draw(st.sampled_from([Mode.PROPOSE, Mode.APPLY_SAFE])),
        sharing_scope=draw(st.sampled_from(list(SharingScope))),
        master_recipients=draw(st.sampled_from(list(MasterRecipients))),
    )
    return pms, ptdirect, policy


def _run(pms, ptdirect, policy):
    return reconcile(pms, ptdirect, policy, as_of=AS_OF, pseudonym_key=KEY)


common = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@common
@given(clinics(), st.randoms(use_true_random=False))
def test_reconciliation_is_a_pure_function_of_its_inputs(clinic, shuffler: random.Random):
    # Given the same inputs, also in another order
    pms, ptdirect, policy = clinic
    users, members = list(ptdirect.users), list(ptdirect.sharing_members)
    shuffler.shuffle(users)
    shuffler.shuffle(members)
    reordered = replace(ptdirect, users=tuple(users), sharing_members=tuple(members))
    # When reconciled twice
    first, second, third = (
        _run(pms, ptdirect, policy),
        _run(pms, ptdirect, policy),
        _run(pms, reordered, policy),
    )
    # Then the outputs are identical
    assert first == second
    assert first.findings == third.findings
    assert first.operations == third.operations


@common
@given(clinics())
def test_pairs_are_listed_once_each_in_id_order(clinic):
    # Given any clinic, some with an access group
    # When it is reconciled
    result = _run(*clinic)
    # Then the report's pairs and the picture's come once each, ordered by (first id, second id)
    pairs = [(pair.first, pair.second) for pair in result.shared_pairs]
    assert pairs == sorted(set(pairs))
    assert [(pair.first, pair.second) for pair in result.picture.pairs] == pairs


@common
@given(clinics())
def test_the_pairs_at_risk_are_exactly_the_shared_pairs_pair_at_risk_holds_for(clinic):
    # Given any clinic
    pms, ptdirect, policy = clinic
    # When its context is built
    context = build_context(pms, ptdirect, policy, AS_OF, KEY)
    # Then the set tested once per run agrees with the test of one pair
    assert context.pairs_at_risk == {pair for pair in context.shared if context.pair_at_risk(*pair)}


@common
@given(clinics())
def test_applying_a_proposal_converges_to_no_operations(clinic):
    pms, ptdirect, policy = clinic
    plan = _run(pms, ptdirect, policy)
    after = apply_operations(ptdirect, plan.operations)
    assert _run(pms, after, policy).operations == ()


@common
@given(clinics())
def test_no_operation_ever_touches_an_unconfirmed_user(clinic):
    pms, ptdirect, policy = clinic
    unconfirmed = {normalise_email(u.email) for u in ptdirect.users if not u.confirmed}
    for op in _run(pms, ptdirect, policy).operations:
        assert normalise_email(op.email) not in unconfirmed


@common
@given(clinics())
def test_the_master_account_is_never_added_to_patient_sharing(clinic):
    pms, ptdirect, policy = clinic
    if ptdirect.master_account is None:
        return
    master = normalise_email(ptdirect.master_account.email)
    plan = _run(pms, ptdirect, policy)
    for op in plan.operations:
        if op.op in (OpKind.ADD_SHARING_MEMBER, OpKind.ENABLE_PATIENT_SHARING):
            assert normalise_email(op.email) != master
    was_sharing = any(
        normalise_email(m.email) == master and m.share_patients for m in ptdirect.sharing_members
    )
    after = apply_operations(ptdirect, plan.operations)
    now_sharing = any(normalise_email(m.email) == master and m.share_patients for m in after.sharing_members)
    assert now_sharing <= was_sharing


@common
@given(clinics(), st.sampled_from(["pms", "ptdirect", "both"]))
def test_an_incomplete_fetch_proposes_no_removals_and_marks_findings_indeterminate(clinic, broken):
    pms, ptdirect, policy = clinic
    if broken in ("pms", "both"):
        pms = replace(pms, complete=False)
    if broken in ("ptdirect", "both"):
        ptdirect = replace(ptdirect, complete=False)
    result = _run(pms, ptdirect, policy)
    assert not [op for op in result.operations if op.op.removal]
    run = RunInfo("r", "manual", "succeeded", None, None)
    report = build_report("org", run, result, {}, None)
    assert {f["state"] for f in report["findings"]} <= {"indeterminate"}
    assert report["resolved"] == []


def _active_people(pms) -> set[str]:
    """Emails and PMS ids of everyone active in this PMS read."""
    return {normalise_email(p.email) for p in pms.practitioners if p.active and p.email} | {
        p.id for p in pms.practitioners if p.active
    }


def _destructive_for_active(pms, ptdirect, operations) -> list[str]:
    active = _active_people(pms)
    links = {normalise_email(u.email): u.pms_link.practitioner_id for u in ptdirect.users if u.pms_link}
    return [
        op.email
        for op in operations
        if (op.op.removal or op.op is OpKind.TRANSFER_PATIENTS)
        and (normalise_email(op.email) in active or links.get(normalise_email(op.email)) in active)
    ]


@common
@given(clinics())
def test_no_destructive_operation_for_any_practitioner_active_in_the_pms(clinic):
    # Given any clinic
    pms, ptdirect, policy = clinic
    # When it is planned
    plan = _run(pms, ptdirect, policy)
    # Then nobody active in the PMS is transferred away or removed
    assert _destructive_for_active(pms, ptdirect, plan.operations) == []


@st.composite
def pms_changes(draw, pms):
    """The same clinic a little later: people go on leave or come back, rows come and go."""
    practitioners = [
        replace(p, active=not p.active) if draw(st.booleans()) and draw(st.booleans()) else p
        for p in pms.practitioners
    ]
    rows = [row for row in pms.access if draw(st.booleans()) or draw(st.booleans())]
    return replace(pms, practitioners=tuple(practitioners), access=AccessLog.from_rows(rows))


@common
@given(st.data())
def test_a_plan_made_from_one_state_is_never_applied_to_another(data):
    # Given a plan made from one picture of the clinic
    pms, ptdirect, policy = data.draw(clinics())
    old_plan = _run(pms, ptdirect, policy)
    # When the PMS changes before the apply, and a newer complete run plans again
    later = data.draw(pms_changes(pms))
    new_plan = _run(later, ptdirect, policy)
    sent = still_called_for(old_plan.operations, [op.key for op in new_plan.operations])
    # Then only what the new plan calls for is sent, and nobody active now is cut off
    assert {op.key for op in sent} <= {op.key for op in new_plan.operations}
    assert _destructive_for_active(later, ptdirect, sent) == []


# Any text, and text made of the characters whose case and composition interact: a capital
# dotted I lower-cases to "i" + a combining dot above, which NFC must reorder after a mark below.
_ADDRESS_TEXT = st.one_of(
    st.text(max_size=12),
    st.text(
        st.sampled_from(["\u0130", "\u0307", "\u0316", "\u0323", "\u0345", "\u0301", "I", "e", " "]),
        max_size=6,
    ),
)


@given(_ADDRESS_TEXT)
def test_an_address_normalised_twice_is_the_address_normalised_once(address: str):
    # Given any address, awkward Unicode included (lower-casing can undo NFC's order of marks)
    once = normalise_email(address)
    # When its normalised form is normalised again
    twice = normalise_email(once)
    # Then nothing changes: a key looked up a second time still finds its person
    assert twice == once


def test_a_capital_dotted_i_before_a_mark_below_normalises_to_one_stable_key():
    # Given an address whose lower case puts a combining dot above before a mark below
    address = "\u0130\u0316rem@clinic.example"
    # When it is normalised, and that key normalised again
    key = normalise_email(address)
    # Then the key is in NFC and is its own normal form
    assert key == "i\u0316\u0307rem@clinic.example"
    assert normalise_email(key) == key
