"""Chaos, reproduced deterministically: lost messages, a dead broker, racing appliers and syncs.

The long, random version is `bench/chaos.py`; these are its failure modes one at a time, each
with a controlled order of events, plus a short seeded storm of lost messages and crashes.
"""

from __future__ import annotations

import json
import random
import threading
from contextlib import contextmanager
from datetime import timedelta
from types import SimpleNamespace

import dramatiq
import pytest
from dramatiq.brokers.redis import RedisBroker
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from connectors.emulators.ptdirect_bridge import PtDirectBridgeEmulator
from tests.clinic_files import write_clinic
from tests.web.conftest import add_clinic
from tests.worker.test_apply_exactly_once import _bridge_state
from worker import actors
from worker.clock import utcnow
from worker.services import proposals as service
from worker.services.orgs import NewOrganisation, add_organisation
from worker.services.redrive import redrive
from worker.services.sync import request_sync, run_sync
from worker.store import repositories as repo
from worker.store.models import Proposal, ProposalOperation, Run
from worker.watchdog import ConsumerWatchdog
from worker.web import create_app

NOW_PLUS = timedelta(minutes=5)  # "later": every lease and re-drive bound has passed


class Recorder(list):
    """A broker `send` that records instead of sending (a lost message is one nobody replays)."""

    def __call__(self, *args) -> None:
        self.append(args)


def _unreachable_apply_send():
    """A real Redis broker pointed at a port where nothing listens: every send fails."""
    broker = RedisBroker(url="redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    actor = dramatiq.actor(lambda proposal_id: None, actor_name="ptsync.apply_proposal", broker=broker)
    return actor.send


def _org(runtime, tmp_path, slug="clinic-a", policy="propose"):
    pms, ptdirect = write_clinic(tmp_path / slug)
    add_organisation(
        runtime,
        NewOrganisation(
            slug=slug,
            pms="csv",
            pms_path=str(pms),
            ptdirect="file",
            ptdirect_path=str(ptdirect),
            policy=policy,
        ),
    )
    return pms, ptdirect


def _synced_proposal(runtime, slug="clinic-a") -> str:
    run_id, _ = request_sync(runtime, slug, "manual")
    assert run_sync(runtime, run_id).status == "succeeded"
    with runtime.db.transaction() as session:
        return session.scalar(select(Proposal.id).order_by(Proposal.created_at.desc()))


def _members(ptdirect) -> list[str]:
    return [m["email"] for m in json.loads(ptdirect.read_text())["practitioner_sharing"]["members"]]


@contextmanager
def _approved_through_a_bridge(runtime, tmp_path):
    """An organisation on a PT Direct bridge emulator (which counts every change), synced and
    approved: yields (bridge, proposal id)."""
    with PtDirectBridgeEmulator(_bridge_state(write_clinic(tmp_path)[1]), "bridge-key") as bridge:
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
        proposal_id = _synced_proposal(runtime)
        service.approve(runtime, proposal_id, "admin")
        yield bridge, proposal_id


def test_a_queued_run_whose_message_was_lost_is_sent_again_by_the_re_driver(runtime, tmp_path):
    # Given a run queued in the database whose message never reached a worker
    _org(runtime, tmp_path)
    run_id, _ = request_sync(runtime, "clinic-a", "manual")
    runs, applies = Recorder(), Recorder()
    # When the re-driver runs now, and again after the bound
    soon = redrive(runtime, runs, applies, utcnow(), after=timedelta(seconds=30))
    later = redrive(runtime, runs, applies, utcnow() + NOW_PLUS, after=timedelta(seconds=30))
    # Then only the later pass sends it, once, and stamps when it did
    assert soon.runs == [] and later.runs == [run_id]
    assert runs == [(run_id,)]
    again = redrive(runtime, runs, applies, utcnow() + NOW_PLUS, after=timedelta(seconds=30))
    assert again.runs == []  # not re-sent within the bound of its last send


def test_a_run_whose_worker_died_is_sent_again_and_taken_over(runtime, tmp_path):
    # Given a run claimed by a worker that then died (its lease lapses)
    _org(runtime, tmp_path)
    run_id, _ = request_sync(runtime, "clinic-a", "manual")
    with runtime.db.transaction() as session:
        assert repo.claim_run(session, run_id, utcnow(), timedelta(seconds=-1))  # lapsed at once
    runs = Recorder()
    # When the re-driver finds the lapsed lease and the re-sent message is processed
    found = redrive(runtime, runs, Recorder(), utcnow() + NOW_PLUS, after=timedelta(seconds=30))
    assert found.runs == [run_id]
    outcome = run_sync(runtime, run_id)
    # Then the run completes, as the second attempt
    assert outcome.status == "succeeded"
    with runtime.db.transaction() as session:
        assert session.get(Run, run_id).attempts == 2


def test_an_approval_that_cannot_reach_the_broker_is_still_applied(runtime, tmp_path):
    # Given Redis is unreachable when the admin approves
    _, ptdirect = _org(runtime, tmp_path)
    proposal_id = _synced_proposal(runtime)
    approval = service.approve_and_apply(runtime, proposal_id, "admin", _unreachable_apply_send())
    assert approval.queued is False and approval.status == "approved"
    # When the re-driver runs once the broker is back
    applies = Recorder()
    redrive(runtime, Recorder(), applies, utcnow() + NOW_PLUS, after=timedelta(seconds=30))
    assert applies == [(proposal_id, False)]
    service.apply(runtime, proposal_id)
    # Then the change is made
    assert "cara@clinic.example" in _members(ptdirect)


def test_the_api_answers_202_approved_will_apply_when_the_broker_is_down(runtime, tmp_path, monkeypatch):
    # Given an organisation with a proposal and an API token, and a broker that is down
    _, token = add_clinic(runtime, tmp_path, "clinic-a")
    proposal_id = _synced_proposal(runtime)
    monkeypatch.setattr(actors.apply_proposal, "send", _unreachable_apply_send())
    # When the admin approves through the API
    with TestClient(create_app(send=Recorder(), background=False)) as client:
        response = client.post(
            f"/api/v1/orgs/clinic-a/proposals/{proposal_id}/approve",
            headers={"Authorization": f"Bearer {token}"},
        )
    # Then the answer is 202 "approved, will apply", not a server error, and the approval is stored
    assert response.status_code == 202
    assert response.json()["detail"] == "approved, will apply"
    assert response.json()["status"] == "approved"


def test_a_sync_never_supersedes_a_proposal_while_its_applier_holds_the_lease(runtime, tmp_path):
    # Given an approved proposal whose applier holds the lease
    _, ptdirect = _org(runtime, tmp_path)
    proposal_id = _synced_proposal(runtime)
    service.approve(runtime, proposal_id, "admin")
    with runtime.db.transaction() as session:
        token = repo.claim_apply(session, proposal_id, utcnow(), timedelta(minutes=1), ("approved",))
    assert token
    # When PT Direct changes and a sync plans something else meanwhile
    document = json.loads(ptdirect.read_text())
    document["users"].append(
        {"email": "zed@clinic.example", "name": "Zed", "status": "unconfirmed", "practitioner_access": True}
    )
    ptdirect.write_text(json.dumps(document))
    _synced_proposal(runtime)
    # Then the proposal being applied is left to its applier
    with runtime.db.transaction() as session:
        assert session.get(Proposal, proposal_id).status == "approved"


def test_an_applier_sends_nothing_once_its_proposal_was_superseded(runtime, tmp_path, monkeypatch):
    # Given an applier that stalls after reading PT Direct, long enough for its lease to lapse,
    # while a sync supersedes the proposal (controlled order: read, lapse, supersede, send)
    with _approved_through_a_bridge(runtime, tmp_path) as (bridge, proposal_id):
        real_adapter = service.ptdirect_adapter

        def stalled_adapter(org, secrets):
            adapter = real_adapter(org, secrets)
            read = adapter.read

            def read_then_lose_the_race():
                state = read()
                with runtime.db.transaction() as session:  # the lease lapses...
                    session.execute(
                        update(Proposal).values(apply_lease_expires_at=utcnow() - timedelta(seconds=1))
                    )
                bridge.state["users"].append(
                    {
                        "email": "zed@clinic.example",
                        "name": "Zed",
                        "status": "unconfirmed",
                        "practitioner_access": True,
                        "pms_link": None,
                    }
                )
                _synced_proposal(runtime)  # ...and a sync supersedes the proposal
                return state

            adapter.read = read_then_lose_the_race
            return adapter

        monkeypatch.setattr(service, "ptdirect_adapter", stalled_adapter)
        requests_before = len(bridge.log)
        # When the applier carries on
        outcome = service.apply(runtime, proposal_id)
        # Then it sends no change at all
        writes = [r for r in bridge.log[requests_before:] if r.method in ("PUT", "DELETE", "POST", "PATCH")]
        assert writes == []
        assert outcome.status == "lease_lost"
        with runtime.db.transaction() as session:
            assert session.get(Proposal, proposal_id).status == "superseded"


def test_a_closed_proposal_left_applying_by_a_dead_applier_is_released(runtime, tmp_path):
    # Given a superseded proposal whose dead applier left its lease and an operation 'applying'
    _org(runtime, tmp_path)
    proposal_id = _synced_proposal(runtime)
    with runtime.db.transaction() as session:
        session.execute(
            update(Proposal).values(status="superseded", apply_token="dead", apply_lease_expires_at=utcnow())
        )
        session.execute(update(ProposalOperation).values(status="applying"))
    # When the re-driver runs
    found = redrive(runtime, Recorder(), Recorder(), utcnow() + NOW_PLUS, after=timedelta(seconds=30))
    # Then the lease is cleared and the operation closed with a reason
    assert found.released == [proposal_id]
    with runtime.db.transaction() as session:
        proposal = session.get(Proposal, proposal_id)
        assert proposal.apply_token is None
        assert [(row.status, row.note[:11]) for row in proposal.operations] == [("closed", "interrupted")]


def test_a_worker_whose_consumer_thread_died_exits_so_it_is_restarted():
    # Given a worker with one live and one dead consumer thread
    dead = threading.Thread(target=lambda: None)
    dead.start()
    dead.join()
    live = threading.Thread(target=threading.Event().wait, daemon=True)
    live.start()
    exits = []
    exited = threading.Event()

    def exit_process(code):
        exits.append(code)
        exited.set()

    worker = SimpleNamespace(consumers={"default": live, "default.DQ": dead})
    # When the watchdog looks
    watchdog = ConsumerWatchdog(interval=0.01, exit_process=exit_process)
    watchdog.after_worker_boot(None, worker)
    # Then the process exits with a non-zero code
    assert exited.wait(5)
    assert exits == [70]


class LossyBroker:
    """Delivers each message to the real actor, except a seeded share it loses or crashes in."""

    def __init__(self, seed: int, loss: float) -> None:
        self.random = random.Random(seed)
        self.loss = loss
        self.lost = 0

    def deliver(self, call, *args) -> None:
        if self.random.random() < self.loss:
            self.lost += 1
            return
        call(*args)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_storm_of_lost_messages_ends_with_every_run_final_and_every_change_made_once(
    runtime, tmp_path, seed
):
    # Given three organisations applying safe additions automatically, and a broker that loses
    # 40% of all messages (sync requests, syncs, applies and re-plans alike)
    folders = {slug: _org(runtime, tmp_path, slug, policy="apply-safe") for slug in ("a-1", "a-2", "a-3")}
    lossy = LossyBroker(seed, 0.4)

    def send_run(run_id):
        lossy.deliver(_process_run, run_id)

    def send_apply(proposal_id, automatic_only):
        lossy.deliver(lambda: service.apply(runtime, proposal_id, automatic_only=automatic_only))

    def _process_run(run_id):
        outcome = run_sync(runtime, run_id)
        if outcome.auto_apply_proposal:
            send_apply(outcome.auto_apply_proposal, True)

    for slug in folders:
        for _ in range(3):
            run_id, created = request_sync(runtime, slug, "webhook")
            if created:
                send_run(run_id)
    # When the re-driver runs a few passes, each "later" than the last
    moment = utcnow()
    for _ in range(12):
        moment += NOW_PLUS
        redrive(runtime, send_run, send_apply, moment, after=timedelta(seconds=30))
    # Then every run is final, every organisation's change is made exactly once, and a clean
    # sync finds nothing left to do
    with runtime.db.transaction() as session:
        statuses = set(session.scalars(select(Run.status)))
    assert statuses == {"succeeded"}
    for slug, (_, ptdirect) in folders.items():
        assert _members(ptdirect).count("cara@clinic.example") == 1
        run_id, _ = request_sync(runtime, slug, "check")
        run_sync(runtime, run_id)
        with runtime.db.transaction() as session:
            report = session.get(Run, run_id).report
        assert report["proposal"] is None, slug
    assert lossy.lost > 0


def test_a_worker_stops_working_on_a_run_another_worker_took_over(runtime, tmp_path, monkeypatch):
    # Given a slow pull, and a run that another worker takes over while it is under way
    _org(runtime, tmp_path)
    run_id, _ = request_sync(runtime, "clinic-a", "manual")
    taken_over = threading.Event()

    class SlowPms:
        system = "csv"

        def pull(self, *, progress, **_):
            for rows in range(200):
                if rows == 3:
                    with runtime.db.transaction() as session:  # the lease lapses; another worker claims it
                        session.execute(update(Run).values(lease_expires_at=utcnow() - timedelta(seconds=1)))
                        assert repo.claim_run(session, run_id, utcnow(), timedelta(minutes=5))
                    taken_over.set()
                progress("appointments", rows)
                threading.Event().wait(0.05)
            raise AssertionError("the pull should have been stopped")

    monkeypatch.setattr("worker.services.sync.pms_connector", lambda org, secrets: SlowPms())
    # When the first worker carries on
    outcome = run_sync(runtime, run_id)
    # Then it stops at the next progress report and leaves the run to its new owner
    assert taken_over.is_set()
    assert outcome.status == "lease_lost"
    with runtime.db.transaction() as session:
        run = session.get(Run, run_id)
        assert run.status == "running" and run.attempts == 2


def test_the_web_answers_503_retry_while_the_database_is_down(runtime):
    # Given the web process while its database is unreachable
    from dataclasses import replace as with_changes

    from worker.store.db import Database

    down = with_changes(runtime, db=Database("postgresql://postgres@127.0.0.1:1/ptsync"))
    # When a signed webhook and an API call arrive
    with TestClient(create_app(runtime=lambda: down, send=Recorder(), background=False)) as client:
        webhook = client.post("/webhooks/generic/clinic-a", content=b"{}")
        api = client.get("/api/v1/orgs/clinic-a/runs", headers={"Authorization": "Bearer pts_x"})
    # Then both say "try again" (503 with Retry-After), not a server error
    assert webhook.status_code == 503 and webhook.headers["retry-after"] == "5"
    assert api.status_code == 503


def test_of_two_appliers_only_the_one_holding_the_lease_sends(runtime, tmp_path, monkeypatch):
    # Given two deliveries of one approval: A claims the proposal first and stalls after its read
    with _approved_through_a_bridge(runtime, tmp_path) as (bridge, proposal_id):
        real_adapter = service.ptdirect_adapter
        outcomes = {}

        def stalled_adapter(org, secrets):
            adapter = real_adapter(org, secrets)
            read = adapter.read

            def read_then_stall():
                state = read()
                if "a_read" not in outcomes:  # only A stalls: its lease lapses and B runs meanwhile
                    outcomes["a_read"] = True
                    with runtime.db.transaction() as session:
                        session.execute(
                            update(Proposal).values(apply_lease_expires_at=utcnow() - timedelta(seconds=1))
                        )
                    outcomes["b"] = service.apply(runtime, proposal_id)
                return state

            adapter.read = read_then_stall
            return adapter

        monkeypatch.setattr(service, "ptdirect_adapter", stalled_adapter)
        # When A carries on after B took over and finished
        outcomes["a"] = service.apply(runtime, proposal_id)
        # Then B applied every change once, and A sent nothing
        assert outcomes["b"].status == "applied" and outcomes["b"].applied == 3
        assert outcomes["a"].status == "lease_lost"
        assert set(bridge.changes.values()) == {1} and len(bridge.changes) == 3
