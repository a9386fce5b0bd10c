"""What a run reads before it pulls, in one statement (`run_memory`), on SQLite and PostgreSQL:
each of the five parts that were five statements, in the cases that tell them apart (the
baseline's cases of incomplete runs are in test_store.py)."""

from __future__ import annotations

from datetime import timedelta

from sharing.context import Baseline
from tests.clinic_files import write_clinic
from tests.worker.test_store import _finished_run
from worker.clock import new_id, utcnow
from worker.services.orgs import NewOrganisation, add_organisation
from worker.store import repositories as repo
from worker.store.models import PhysitrackKey, Run
from worker.store.run_memory import run_memory


def _memory(store, org_id: int, run_id: str = "next-run", *, with_report: bool = False):
    with store.db.transaction() as session:
        return run_memory(session.connection(), org_id, run_id, with_report=with_report)


def _report_run(
    store, now, *, roster: list[str], report: dict, policy: dict, digest: str, slug: str = "clinic-a"
) -> str:
    """A complete run closed as succeeded with a report, policy, input digest, cursors and state."""
    with store.db.transaction() as session:
        run, _ = repo.queue_run(session, repo.get_org(session, slug), "manual", now)
    with store.db.transaction() as session:
        claim = repo.claim_run(session, run.id, now, timedelta(minutes=5))
        outcome = repo.RunOutcome(
            finished_at=now,
            report=report,
            counts={"input_digest": digest},
            complete=True,
            roster=roster,
            plan=[],
            policy=policy,
            cursors={"appointments": "2026-11-25T10:00:00Z", "practitioners": "page-7"},
            pms_state={"patients": {"p-1": ["a", "b"]}},
        )
        assert repo.save_run_outcome(session, claim, outcome, store.secrets)
    return run.id


def _clinic_b(store, tmp_path):
    """A second organisation, on its own CSV export."""
    pms, ptdirect = write_clinic(tmp_path / "b")
    return add_organisation(
        store,
        NewOrganisation(
            slug="clinic-b", pms="csv", pms_path=str(pms), ptdirect="file", ptdirect_path=str(ptdirect)
        ),
    )


def test_given_an_organisation_that_never_ran_when_a_run_reads_its_memory_then_every_part_is_empty(
    store, org
):
    # Given: a new organisation (no run, cursor, state, key or report yet)
    # When
    memory = _memory(store, org.id, with_report=True)
    # Then
    assert memory.cursors == {} and memory.keys == {}
    assert memory.state_data is None and memory.roster is None
    assert memory.report_run is None and memory.report is None


def test_given_earlier_runs_keys_and_state_when_a_run_reads_its_memory_then_it_matches_what_each_run_left(
    store, org
):
    # Given: an older complete run, then a newer one with a report, a policy, an input digest,
    # cursors and state, and two practitioners' Physitrack keys
    now = utcnow()
    _finished_run(store, now - timedelta(minutes=3), complete=True, roster=["ana@x", "ben@x", "cy@x"])
    reported = _report_run(
        store,
        now - timedelta(minutes=1),
        roster=["ana@x", "ben@x"],
        report={"findings": [], "note": "ü ∑", "counts": {"findings": 0}},
        policy={"lookback_days": 540},
        digest="d1",
    )
    with store.db.transaction() as session:
        for email in ("ana@x", "ben@x"):
            session.add(
                PhysitrackKey(
                    org_id=org.id,
                    practitioner_email=email,
                    key_encrypted=store.secrets.encrypt(f"key-{email}".encode()),
                    updated_at=now,
                )
            )
    # When
    memory = _memory(store, org.id)
    with_report = _memory(store, org.id, with_report=True)
    # Then: each part as the single-purpose reads answer it
    assert memory.cursors == {"appointments": "2026-11-25T10:00:00Z", "practitioners": "page-7"}
    assert repo.decode_pms_state(memory.state_data, store.secrets) == {"patients": {"p-1": ["a", "b"]}}
    assert set(memory.keys) == {"ana@x", "ben@x"}
    assert sorted(memory.roster) == ["ana@x", "ben@x"]  # the newest complete run's
    assert memory.report_run == (reported, {"lookback_days": 540}, "d1")
    # ... and the report itself only when asked for
    assert memory.report is None
    assert with_report.report == {"findings": [], "note": "ü ∑", "counts": {"findings": 0}}
    assert with_report.report_run == memory.report_run


def test_given_the_only_complete_run_is_the_run_itself_when_it_reads_its_memory_then_it_has_no_baseline(
    store, org
):
    # Given: one complete run (a run never compares itself with itself)
    run_id = _finished_run(store, utcnow(), complete=True, roster=["ana@x"])
    # When
    memory = _memory(store, org.id, run_id)
    # Then
    assert memory.roster is None
    assert repo.baseline_from(memory.roster, accept_drop=False) is None
    assert repo.baseline_from(memory.roster, accept_drop=True) == Baseline(frozenset(), True)


def test_given_a_complete_run_that_saw_nobody_when_a_run_reads_its_memory_then_the_baseline_is_empty_not_missing(
    store, org
):
    # Given: a complete run whose PMS read had no active practitioner (a roster of nobody)
    _finished_run(store, utcnow(), complete=True, roster=[])
    # When
    memory = _memory(store, org.id)
    # Then: an empty roster, which is a baseline (of nobody), not the absence of one
    assert memory.roster == []


def test_given_two_organisations_when_one_reads_its_memory_then_nothing_of_the_other_is_in_it(
    store, org, tmp_path
):
    # Given: another organisation with a report run, cursors, state and a key
    other = _clinic_b(store, tmp_path)
    now = utcnow()
    _report_run(
        store, now, roster=["zed@x"], report={"findings": []}, policy={}, digest="other", slug="clinic-b"
    )
    with store.db.transaction() as session:
        session.add(
            PhysitrackKey(org_id=other.id, practitioner_email="zed@x", key_encrypted="k", updated_at=now)
        )
    # When: the first organisation reads its memory
    memory = _memory(store, org.id, new_id(), with_report=True)
    # Then: nothing of the other's
    assert memory.cursors == {} and memory.keys == {} and memory.state_data is None
    assert memory.roster is None and memory.report_run is None and memory.report is None


def test_given_a_pms_account_when_a_run_asks_whether_its_read_is_wanted_then_only_where_another_could_use_it(
    store, org, tmp_path
):
    # Given: another organisation on the same PMS account (its stored account fingerprint)
    from sqlalchemy import update

    from worker.store.models import Organisation, SharedPull
    from worker.store.run_memory import SharedReadQuestion

    other = _clinic_b(store, tmp_path)
    orgs = Organisation.__table__
    with store.db.transaction() as session:
        session.execute(update(orgs).where(orgs.c.id == other.id).values(pms_account="account-1"))

    def wanted(*, asked: bool = True) -> bool:
        question = SharedReadQuestion("account-1", "csv", utcnow()) if asked else None
        with store.db.transaction() as session:
            return run_memory(
                session.connection(), org.id, "next-run", with_report=False, shared=question
            ).read_wanted

    # When / Then: nobody else syncing and no stored read: not wanted
    assert not wanted()
    # the other organisation has a run queued: wanted (it can use this read), unless it is paused
    with store.db.transaction() as session:
        queued, _ = repo.queue_run(session, repo.get_org(session, "clinic-b"), "schedule:tick", utcnow())
    assert wanted()
    assert not wanted(asked=False)
    with store.db.transaction() as session:
        session.execute(update(orgs).where(orgs.c.id == other.id).values(paused_at=utcnow()))
    assert not wanted()
    with store.db.transaction() as session:
        session.execute(update(orgs).where(orgs.c.id == other.id).values(paused_at=None))
    # running: wanted; finished: not
    with store.db.transaction() as session:
        assert repo.claim_run(session, queued.id, utcnow(), timedelta(minutes=5))
    assert wanted()
    with store.db.transaction() as session:
        session.execute(update(Run.__table__).values(status="succeeded", lease_token=None))
    assert not wanted()
    # a stored read of the account: wanted until it expires
    now = utcnow()
    with store.db.transaction() as session:
        session.add(
            SharedPull(
                key="account-1",
                org_id=other.id,
                started_at=now,
                window_start="2025-06-01",
                expires_at=now + timedelta(minutes=15),
                data=b"read",
            )
        )
    assert wanted()
    with store.db.transaction() as session:
        session.execute(update(SharedPull.__table__).values(expires_at=now - timedelta(seconds=1)))
    assert not wanted()
