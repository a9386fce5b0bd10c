"""The signed webhook endpoint looks the organisation up, verifies the signature, stores the
delivery and queues its run in one transaction (issue 17): a refusal stores nothing, and the
inbox's short timeouts still bound the insert. On SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import json
import sqlite3
import threading
import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, func, select

from tests.conftest import migrated_runtime
from tests.web.conftest import add_clinic, signed_headers
from worker.services import deliveries
from worker.store.models import AuditEntry, Delivery, Run
from worker.web import create_app


@pytest.fixture
def app_runtime(database_url, secret_key, monkeypatch):
    """The process-wide runtime on this test's database (SQLite or PostgreSQL)."""
    yield from migrated_runtime(monkeypatch, database_url, secret_key)


@pytest.fixture
def signing_secret(app_runtime, tmp_path) -> str:
    credentials, _ = add_clinic(app_runtime, tmp_path, "clinic-a")
    return credentials.signing_secret


@pytest.fixture
def client(app_runtime, sent):
    with TestClient(create_app(send=sent, background=False)) as test_client:
        yield test_client


def _stored(runtime) -> tuple[int, int, int]:
    """Deliveries, runs and sync_requested audit entries."""
    with runtime.db.transaction() as session:
        return (
            session.scalar(select(func.count()).select_from(Delivery)),
            session.scalar(select(func.count()).select_from(Run)),
            session.scalar(select(func.count()).where(AuditEntry.action == "sync_requested")),
        )


def _commits(runtime) -> list[int]:
    """Counts the transactions committed from now on."""
    commits: list[int] = []
    event.listen(runtime.db.engine, "commit", lambda _connection: commits.append(1))
    return commits


def test_a_webhook_signed_with_another_secret_is_401_and_its_transaction_commits_nothing(
    app_runtime, client, signing_secret
):
    # Given an organisation and a webhook signed with a secret that is not its own
    body = json.dumps({"type": "appointment.updated"}).encode()
    other_secret = "whsec_" + base64.b64encode(b"x" * 32).decode()
    commits = _commits(app_runtime)
    # When it is posted
    response = client.post(
        "/webhooks/generic/clinic-a", content=body, headers=signed_headers(other_secret, body)
    )
    # Then the answer is the one it always was, the lookup's transaction committed nothing,
    # and nothing is stored
    assert (response.status_code, response.json()) == (401, {"detail": "webhook verification failed"})
    assert commits == []
    assert _stored(app_runtime) == (0, 0, 0)


def test_an_unknown_organisation_is_answered_like_a_bad_signature_and_costs_the_same_statements(
    app_runtime, client, signing_secret
):
    # Given a badly signed webhook for a real organisation, and one for a slug nobody has
    body = b'{"type": "x"}'
    headers = signed_headers("whsec_" + base64.b64encode(b"y" * 32).decode(), body)
    statements: list[str] = []
    event.listen(
        app_runtime.db.engine,
        "before_cursor_execute",
        lambda _c, _cursor, statement, *_: statements.append(statement.split()[0]),
    )
    # When both are posted
    known = client.post("/webhooks/generic/clinic-a", content=body, headers=headers)
    known_statements, statements[:] = list(statements), []
    unknown = client.post("/webhooks/generic/nobody", content=body, headers=headers)
    # Then they are refused alike, after the same work on the database (the lookup only: the
    # inbox's timeouts are set only for an insert), and nothing is stored
    assert (known.status_code, known.json()) == (unknown.status_code, unknown.json())
    assert (unknown.status_code, unknown.json()) == (401, {"detail": "webhook verification failed"})
    assert known_statements == statements == ["SELECT"]
    assert _stored(app_runtime) == (0, 0, 0)


def test_a_verified_webhook_refused_after_its_signature_check_stores_nothing(
    app_runtime, client, signing_secret
):
    # Given correctly signed webhooks whose body is not JSON, or whose id is longer than stored
    not_json = b"not json"
    long_id = b'{"type": "x"}'
    # When they are posted (the refusals now happen inside the inbox's transaction)
    refused = [
        client.post(
            "/webhooks/generic/clinic-a", content=not_json, headers=signed_headers(signing_secret, not_json)
        ),
        client.post(
            "/webhooks/generic/clinic-a",
            content=long_id,
            headers=signed_headers(signing_secret, long_id, "m" * 201),
        ),
    ]
    # Then each is a 400 and the transaction rolled back: nothing stored
    assert [answer.status_code for answer in refused] == [400, 400]
    assert _stored(app_runtime) == (0, 0, 0)


def test_a_signed_webhook_is_stored_and_queues_one_run_in_two_transactions(
    app_runtime, client, signing_secret, sent
):
    # Given an organisation with no run
    body = json.dumps({"type": "appointment.updated"}).encode()
    commits = _commits(app_runtime)
    # When a correctly signed webhook is posted
    response = client.post(
        "/webhooks/generic/clinic-a", content=body, headers=signed_headers(signing_secret, body)
    )
    # Then it is accepted, a run is queued and sent, and that took two transactions: the
    # inbox's (lookup, check, insert and queuing the run) and, once the message went out,
    # marking the run sent
    assert response.status_code == 200 and response.json()["status"] == "accepted"
    assert len(commits) == 2
    assert _stored(app_runtime) == (1, 1, 1) and len(sent) == 1
    # and the last one marked both the run sent and the delivery relayed to it
    with app_runtime.db.transaction() as session:
        [run] = session.scalars(select(Run)).all()
        [delivery] = session.scalars(select(Delivery)).all()
    assert run.enqueued_at is not None and sent == [run.id]
    assert (delivery.status, delivery.run_id, delivery.relayed_at is not None) == ("relayed", run.id, True)


def test_the_inbox_timeout_still_bounds_the_signed_webhooks_insert(
    app_runtime, client, signing_secret, database_url, monkeypatch
):
    # Given an inbox timeout of 0.5 s, and another connection holding a lock that makes the
    # insert into the inbox wait (the organisation can still be read)
    monkeypatch.setattr(deliveries, "INBOX_TIMEOUT_MS", 500)
    if database_url.startswith("sqlite"):
        blocker = sqlite3.connect(database_url.removeprefix("sqlite:///"), timeout=1)
        blocker.execute("BEGIN IMMEDIATE")
    else:
        import psycopg

        blocker = psycopg.connect(database_url)
        blocker.execute("LOCK TABLE deliveries IN SHARE MODE")
    answers: dict[str, object] = {}
    body = json.dumps({"type": "appointment.updated"}).encode()

    def post() -> None:
        answers["webhook"] = client.post(
            "/webhooks/generic/clinic-a", content=body, headers=signed_headers(signing_secret, body)
        )

    # When a signed webhook arrives
    started = time.monotonic()
    sender = threading.Thread(target=post)
    sender.start()
    sender.join(timeout=5)
    waited = time.monotonic() - started
    blocker.rollback()
    blocker.close()
    sender.join(timeout=10)
    # Then its insert gave up after the short timeout with a retryable 503, and nothing is stored
    webhook = answers["webhook"]
    assert (webhook.status_code, webhook.headers["Retry-After"]) == (503, "5")
    assert waited < 3
    assert _stored(app_runtime) == (0, 0, 0)


def test_a_webhook_within_its_interval_reads_the_runs_once_and_never_a_report(
    app_runtime, client, signing_secret, sent
):
    # Given an organisation (minimum interval 60 s) whose first webhook queued a run, and one
    # whose run has finished with a report within the interval
    first = b'{"type": "appointment.updated"}'
    assert client.post(
        "/webhooks/generic/clinic-a", content=first, headers=signed_headers(signing_secret, first)
    )
    statements: list[str] = []
    event.listen(
        app_runtime.db.engine,
        "before_cursor_execute",
        lambda _c, _cursor, statement, *_: statements.append(" ".join(statement.split())),
    )
    # When another webhook joins the queued run
    second = b'{"type": "appointment.updated", "n": 2}'
    answer = client.post(
        "/webhooks/generic/clinic-a", content=second, headers=signed_headers(signing_secret, second, "m2")
    )
    joined, statements[:] = list(statements), []
    # and, after the run finished, a third arrives within the interval
    with app_runtime.db.transaction() as session:
        session.execute(Run.__table__.update().values(status="succeeded", report={"big": "x" * 1000}))
    third = b'{"type": "appointment.updated", "n": 3}'
    client.post(
        "/webhooks/generic/clinic-a", content=third, headers=signed_headers(signing_secret, third, "m3")
    )
    waited = list(statements)
    # Then the join read the runs table once (the queued run, not again to queue), the wait
    # read only the newest request time, and both webhooks were stored
    assert answer.json()["status"] == "accepted" and len(sent) == 1
    assert len([s for s in joined if s.startswith("SELECT") and "FROM runs" in s]) == 1
    reads = [s for s in waited if s.startswith("SELECT") and "FROM runs" in s]
    [newest] = [s for s in reads if "ORDER BY runs.requested_at DESC" in s]
    assert len(reads) == 2 and newest.startswith("SELECT runs.requested_at FROM runs")
    with app_runtime.db.transaction() as session:
        statuses = sorted(session.scalars(select(Delivery.status)).all())
    assert statuses == ["pending", "relayed", "relayed"]


def test_a_signed_webhook_for_a_paused_organisation_is_kept_as_skipped_in_its_one_transaction(
    app_runtime, client, signing_secret, sent
):
    # Given a paused organisation
    from worker.services.org_admin import set_paused

    assert set_paused(app_runtime, "clinic-a", True, "ana")
    commits = _commits(app_runtime)
    # When a correctly signed webhook arrives
    body = json.dumps({"type": "appointment.updated"}).encode()
    response = client.post(
        "/webhooks/generic/clinic-a", content=body, headers=signed_headers(signing_secret, body)
    )
    # Then it is acknowledged and kept for the record as skipped, in the inbox's one transaction:
    # no run is queued and no message is sent
    assert response.status_code == 200 and len(commits) == 1
    assert _stored(app_runtime) == (1, 0, 0) and sent == []
    with app_runtime.db.transaction() as session:
        assert session.scalar(select(Delivery.status)) == "skipped"


def test_a_signed_webhook_whose_run_cannot_be_queued_in_time_is_503_and_stores_nothing(
    app_runtime, client, signing_secret, database_url, sent, monkeypatch
):
    if database_url.startswith("sqlite"):
        pytest.skip("SQLite has one writer: the inbox insert itself waits (the timeout test above)")
    import psycopg

    # Given an inbox timeout of 0.5 s, and another connection holding a lock on the runs table
    # (the inbox insert goes through; queuing the run in the same transaction must wait)
    monkeypatch.setattr(deliveries, "INBOX_TIMEOUT_MS", 500)
    blocker = psycopg.connect(database_url)
    blocker.execute("LOCK TABLE runs IN EXCLUSIVE MODE")
    try:
        # When a signed webhook arrives
        body = json.dumps({"type": "appointment.updated"}).encode()
        started = time.monotonic()
        response = client.post(
            "/webhooks/generic/clinic-a", content=body, headers=signed_headers(signing_secret, body)
        )
        waited = time.monotonic() - started
    finally:
        blocker.rollback()
        blocker.close()
    # Then it is a retryable 503 after the short timeout, and the delivery was not kept without
    # its run: nothing is stored, nothing is sent (the sender's retry starts from nothing)
    assert (response.status_code, response.headers["Retry-After"]) == (503, "5")
    assert waited < 3
    assert _stored(app_runtime) == (0, 0, 0) and sent == []
    # and the retry, once the lock is gone, is accepted and queues the run
    retried = client.post(
        "/webhooks/generic/clinic-a", content=body, headers=signed_headers(signing_secret, body)
    )
    assert retried.json()["status"] == "accepted" and _stored(app_runtime) == (1, 1, 1) and len(sent) == 1
