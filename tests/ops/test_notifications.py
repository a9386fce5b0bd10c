"""Notifications: a real SMTP server, a local webhook receiver, dedupe, the outbox's guarantees."""

from __future__ import annotations

import email
import email.policy
from datetime import timedelta

import pytest
from sqlalchemy import select, update
from standardwebhooks.webhooks import Webhook

from tests.ops.conftest import SLUG, payload_of, sync_and_settle
from worker.clock import utcnow
from worker.errors import InvalidInput
from worker.services import notify_delivery, notify_events, notify_watch, sync
from worker.services.notifications import NewChannel, add_channel, notification_status
from worker.store.models import NotificationMessage, Run


def _messages(runtime) -> list[NotificationMessage]:
    with runtime.db.transaction() as session:
        return list(session.scalars(select(NotificationMessage).order_by(NotificationMessage.id)))


def test_new_findings_are_emailed_through_a_real_smtp_server(runtime, clinic, smtp_server, worker_thread):
    # Given an email channel on the clinic
    add_channel(runtime, SLUG, NewChannel("email:admin@clinic.example"), "cli:test")
    # When a sync finds Cara co-treating with Ana outside sharing
    sync_and_settle(worker_thread)
    # Then the SMTP server received one message naming the clinic, who and why, with the page link
    [envelope] = [m for m in smtp_server.messages if "new finding" in m.content.decode()]
    assert envelope.rcpt_tos == ["admin@clinic.example"]
    message = email.message_from_bytes(envelope.content, policy=email.policy.default)
    assert message["From"] == "ptsync@ops.example"
    assert SLUG in message["Subject"] and "2 new findings" in message["Subject"]
    body = message.get_body(("plain",)).get_content()
    assert "Cara" in body and "Ana" in body
    assert f"http://127.0.0.1:8000/orgs/{SLUG}/" in body
    # and no patient identifier from the PMS export (p1..p8) appears in it
    assert not any(f" p{n}" in body or f"p{n}," in body for n in range(1, 9))


def test_a_signed_webhook_reaches_a_local_receiver_that_verifies_it(runtime, clinic, receiver, worker_thread):
    # Given a webhook channel for findings and proposals
    added = add_channel(runtime, SLUG, NewChannel(receiver.url, events=("findings", "proposal")), "cli:test")
    # When a sync finds problems and proposes changes that need approval
    sync_and_settle(worker_thread)
    # Then each request verifies against the channel's secret (Standard Webhooks)
    assert len(receiver.requests) == 2
    types = set()
    for headers, body in receiver.requests:
        verified = Webhook(added.signing_secret).verify(body, headers)
        assert verified["data"]["org"] == SLUG
        types.add(verified["type"])
    assert types == {"ptsync.findings", "ptsync.proposal"}
    # and a tampered body does not
    headers, body = receiver.requests[0]
    with pytest.raises(Exception, match=r"(?i)signature"):
        Webhook(added.signing_secret).verify(body.replace(b"clinic-a", b"clinic-b"), headers)


def test_an_ongoing_finding_is_not_announced_again_on_the_next_run(runtime, clinic, receiver, worker_thread):
    # Given a webhook channel for findings
    add_channel(runtime, SLUG, NewChannel(receiver.url, events=("findings",)), "cli:test")
    sync_and_settle(worker_thread)
    assert len(receiver.requests) == 1
    first = payload_of(receiver.requests[0][1])["data"]["findings"]
    # When the next run finds the same (now ongoing) findings
    sync_and_settle(worker_thread)
    # Then nothing new is sent
    assert len(receiver.requests) == 1
    assert {f["kind"] for f in first} == {"duplicate_patient_risk", "missing_new_user"}


def test_min_severity_and_events_filter_what_a_channel_gets(runtime, clinic, receiver, worker_thread):
    # Given a findings channel for high severity only, and one from medium up
    add_channel(
        runtime, SLUG, NewChannel(receiver.url, events=("findings",), min_severity="high"), "cli:test"
    )
    add_channel(runtime, SLUG, NewChannel(receiver.url + "?m", events=("findings",)), "cli:test")
    # When a sync finds two medium findings and a proposal
    sync_and_settle(worker_thread)
    # Then only the medium channel is told, and only of findings (no proposal message)
    [(_, body)] = receiver.requests
    assert [f["severity"] for f in payload_of(body)["data"]["findings"]] == ["medium", "medium"]


def test_a_notification_for_a_run_that_rolled_back_is_never_sent(runtime, clinic, receiver, monkeypatch):
    # Given a webhook channel, and a run whose final transaction fails after the outbox rows were written
    add_channel(runtime, SLUG, NewChannel(receiver.url), "cli:test")
    real = notify_events.record_for_run

    def record_then_fail(session, *args, **kwargs):
        real(session, *args, **kwargs)
        session.flush()  # the rows really were written in the transaction
        raise RuntimeError("the database went away before commit")

    monkeypatch.setattr(notify_events, "record_for_run", record_then_fail)
    run_id, _ = sync.request_sync(runtime, SLUG, "manual")
    # When the run fails and is released for retry
    with pytest.raises(RuntimeError):
        sync.run_sync(runtime, run_id)
    # Then no message exists, none is due for the relay, and the receiver got nothing
    assert _messages(runtime) == []
    assert notify_delivery.relay_due(runtime, lambda i: notify_delivery.deliver(runtime, i)) == 0
    assert receiver.requests == []
    with runtime.db.transaction() as session:
        assert session.get(Run, run_id).status == "running"  # released: the retry redoes it all


def test_a_channel_that_keeps_failing_is_retried_with_backoff_and_reported(
    runtime, clinic, receiver, worker_thread
):
    # Given a webhook channel whose receiver answers 500
    receiver.status = 500
    add_channel(runtime, SLUG, NewChannel(receiver.url, events=("findings",)), "cli:test")
    sync_and_settle(worker_thread)
    [message] = _messages(runtime)
    assert (
        message.status == "pending"
        and message.attempts == 1
        and message.last_error == "webhook answered HTTP 500"
    )
    assert message.next_attempt_at - utcnow() > timedelta(seconds=20)  # backoff, not a busy loop
    # When the relay retries it twice more once each backoff has passed
    for _ in range(2):
        with runtime.db.transaction() as session:
            session.execute(
                update(NotificationMessage).values(next_attempt_at=utcnow() - timedelta(seconds=1))
            )
        notify_delivery.relay_due(runtime, lambda i: notify_delivery.deliver(runtime, i))
    # Then the channel is reported as failing, with the reason and no URL secret
    [status] = notification_status(runtime, SLUG)
    assert status.state == "failing" and status.consecutive_failures == 3 and status.pending == 1
    assert len(receiver.requests) == 3
    # and when the receiver recovers, the message goes out and the channel is healthy again
    receiver.status = 200
    with runtime.db.transaction() as session:
        session.execute(update(NotificationMessage).values(next_attempt_at=utcnow() - timedelta(seconds=1)))
    notify_delivery.relay_due(runtime, lambda i: notify_delivery.deliver(runtime, i))
    assert _messages(runtime)[0].status == "sent"
    assert notification_status(runtime, SLUG)[0].state == "ok"


def test_a_daily_digest_collects_the_days_messages_into_one(runtime, clinic, receiver, worker_thread):
    # Given a daily-digest channel for findings and proposals (not staleness: "the morning" may be
    # hours after the sync, whatever time of day the test runs)
    add_channel(
        runtime, SLUG, NewChannel(receiver.url, events=("findings", "proposal"), digest="daily"), "cli:test"
    )
    # When a sync finds problems, nothing is sent at once
    sync_and_settle(worker_thread)
    assert receiver.requests == []
    assert {m.status for m in _messages(runtime)} == {"held"}
    # Then the morning watch sends one digest with every item, once
    morning = utcnow().replace(hour=9)
    for _ in range(2):
        notify_delivery.dispatch(notify_watch.watch(runtime, morning))
        worker_thread.join("default", fail_fast=True, timeout=10_000)
    [(_, body)] = receiver.requests
    digest = payload_of(body)
    assert digest["type"] == "ptsync.digest" and len(digest["data"]["items"]) == 2


def test_syncs_failing_in_a_row_are_announced_once_per_streak(runtime, clinic, receiver, worker_thread):
    # Given a channel for failing syncs and a PT Direct snapshot that has become unreadable
    add_channel(runtime, SLUG, NewChannel(receiver.url, events=("failing",)), "cli:test")
    clinic.write_text("{ not json")
    for _ in range(3):
        sync_and_settle(worker_thread)
    # When the clock's watch looks, twice
    for _ in range(2):
        notify_delivery.dispatch(notify_watch.watch(runtime, utcnow()))
        worker_thread.join("default", fail_fast=True, timeout=10_000)
    # Then one message says syncs failed 3 times in a row, with the reason
    [(_, body)] = receiver.requests
    data = payload_of(body)["data"]
    assert data["failures"] == 3 and "invalid JSON" in data["error"]
    # and the metrics say so too (the PtsyncSyncFailing alert)
    from worker.web.ops import exposition

    scrape = exposition(lambda: runtime).decode()
    assert 'ptsync_org_consecutive_failures{org="clinic-a"} 3.0' in scrape
    assert "ptsync_org_seconds_since_last_success{" not in scrape


def test_an_organisation_without_a_recent_success_is_announced_as_stale(
    runtime, clinic, receiver, worker_thread
):
    # Given a channel for stale organisations and the default 2-minute poll with one successful run
    add_channel(runtime, SLUG, NewChannel(receiver.url, events=("stale",)), "cli:test")
    sync_and_settle(worker_thread)
    # When the watch looks three hours later (more than twice the schedule)
    notify_delivery.dispatch(notify_watch.watch(runtime, utcnow() + timedelta(hours=3)))
    worker_thread.join("default", fail_fast=True, timeout=10_000)
    # Then one stale message is sent
    [(_, body)] = receiver.requests
    assert payload_of(body)["type"] == "ptsync.stale"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("email:not-an-address", "not an email address"),
        ("nonsense://x", "not a notification URL"),
        ("https://", "no host"),
    ],
)
def test_a_bad_channel_url_is_refused_with_the_reason(runtime, clinic, url, reason):
    with pytest.raises(InvalidInput, match=reason):
        add_channel(runtime, SLUG, NewChannel(url), "cli:test")
    assert notification_status(runtime, SLUG) == []


def test_an_apply_that_fails_is_announced_with_the_reason(runtime, clinic, receiver, worker_thread):
    from worker.services import proposals as proposal_service
    from worker.store.models import Proposal

    # Given an apply channel and an approved proposal
    add_channel(runtime, SLUG, NewChannel(receiver.url, events=("apply",)), "cli:test")
    sync_and_settle(worker_thread)
    with runtime.db.transaction() as session:
        proposal_id = session.scalar(select(Proposal.id))
    proposal_service.approve(runtime, proposal_id, "cli:dana")
    # When applying finds the PT Direct snapshot unreadable
    clinic.write_text("[]")
    assert proposal_service.apply(runtime, proposal_id).status == "failed"
    worker_thread.join("default", fail_fast=True, timeout=10_000)
    # Then one message says the apply failed, and why
    [(_, body)] = receiver.requests
    data = payload_of(body)["data"]
    assert data["outcome"] == "failed" and data["proposal_id"] == proposal_id and data["reason"]


@pytest.mark.postgres
def test_the_outbox_and_its_dedupe_work_on_postgresql(postgres_url, secret_key, tmp_path, receiver):
    from tests.clinic_files import write_clinic
    from worker.crypto import load_secret_box
    from worker.runtime import Runtime
    from worker.services.orgs import NewOrganisation, add_organisation
    from worker.settings import Settings
    from worker.store.db import Database

    # Given an organisation on PostgreSQL with a webhook channel and a daily-digest channel
    settings = Settings(database_url=postgres_url, secret_key=secret_key)
    database = Database(postgres_url)
    database.migrate()
    runtime = Runtime(settings=settings, db=database, secrets=load_secret_box(settings))
    pms, ptdirect = write_clinic(tmp_path / "pg")
    add_organisation(
        runtime,
        NewOrganisation(
            slug=SLUG, pms="csv", pms_path=str(pms), ptdirect="file", ptdirect_path=str(ptdirect)
        ),
    )
    add_channel(runtime, SLUG, NewChannel(receiver.url, events=("findings",)), "cli:test")
    add_channel(
        runtime,
        SLUG,
        NewChannel(receiver.url + "?digest", events=("findings", "proposal"), digest="daily"),
        "cli:test",
    )
    try:
        # When two runs find the same findings, and the digest is compiled twice
        for _ in range(2):
            run_id, _ = sync.request_sync(runtime, SLUG, "manual")
            assert sync.run_sync(runtime, run_id).status == "succeeded"
            with runtime.db.transaction() as session:
                pending = list(
                    session.scalars(
                        select(NotificationMessage.id).where(NotificationMessage.status == "pending")
                    )
                )
            for message_id in pending:
                notify_delivery.deliver(runtime, message_id)
        for _ in range(2):
            for message_id in notify_watch.watch(runtime, utcnow().replace(hour=9)):
                notify_delivery.deliver(runtime, message_id)
        # Then one findings message and one digest went out
        assert sorted(payload_of(body)["type"] for _, body in receiver.requests) == [
            "ptsync.digest",
            "ptsync.findings",
        ]
        # and the database gauges read PostgreSQL too
        from worker.web.ops import exposition

        scrape = exposition(lambda: runtime).decode()
        assert 'ptsync_org_consecutive_failures{org="clinic-a"} 0.0' in scrape
        assert "ptsync_database_up 1.0" in scrape
        # and retention runs there (nothing is old yet)
        from worker.services.retention import prune

        assert prune(runtime, dry_run=True).runs == 0
    finally:
        database.dispose()


def test_a_channel_with_no_events_is_refused(runtime, clinic):
    with pytest.raises(InvalidInput, match="at least one event"):
        add_channel(runtime, SLUG, NewChannel("email:a@clinic.example", events=()), "cli:test")
