"""Attacks on the webhook endpoints before any authentication: stalling the server through
the database, crashing it with malformed input, colliding ids, probing which organisations
exist, and turning a burst of events into a burst of full syncs."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from tests.web.conftest import signed_headers
from worker.services import deliveries
from worker.services.deliveries import relay
from worker.services.sync import run_sync
from worker.store.db import short_statements
from worker.store.models import Delivery, Run


def _count(runtime, model) -> int:
    with runtime.db.transaction() as session:
        return session.scalar(select(func.count()).select_from(model))


def _physitrack(client, clinic, body: bytes):
    credentials, _ = clinic
    return client.post(
        f"/webhooks/physitrack/{credentials.url_token}",
        content=body,
        headers={"Content-Type": "application/json"},
    )


def test_a_locked_database_stalls_neither_the_login_page_nor_the_sender(runtime, client, clinic, monkeypatch):
    # Given an inbox timeout of 3 s (5 s in production) and another process holding SQLite's
    # write lock for 4 s
    monkeypatch.setattr(deliveries, "INBOX_TIMEOUT_MS", 3000)
    database = runtime.settings.resolved_database_url.removeprefix("sqlite:///")
    blocker = sqlite3.connect(database, timeout=1)
    blocker.execute("BEGIN IMMEDIATE")
    answers: dict[str, object] = {}

    def send_webhook() -> None:
        answers["webhook"] = _physitrack(client, clinic, b'{"id": "evt-1", "event": "new_client_created"}')

    sender = threading.Thread(target=send_webhook)
    # When a webhook arrives and, while it waits for the inbox, someone opens the login page
    sender.start()
    time.sleep(0.3)
    started = time.monotonic()
    login = client.get("/orgs/clinic-a/login")
    login_seconds = time.monotonic() - started
    time.sleep(max(4.0 - (time.monotonic() - started) - 0.3, 0))
    blocker.rollback()
    blocker.close()
    sender.join(timeout=10)
    # Then the login page answered at once (the event loop was free), and the webhook got a
    # retryable 503 after the short inbox timeout, with nothing stored
    assert login.status_code == 200 and login_seconds < 1.5
    webhook = answers["webhook"]
    assert webhook.status_code == 503 and webhook.headers["Retry-After"] == "5"
    assert _count(runtime, Delivery) == 0


@pytest.mark.parametrize(
    "signature",
    ["v1", "v1,abc,def", "v1,@@not-base64@@", "", " ", "v1,", "v2 v1"],
)
def test_a_malformed_signature_header_is_a_401_not_a_crash(runtime, client, clinic, signature):
    # Given a signed-endpoint request whose webhook-signature is malformed
    body = b'{"type": "x"}'
    headers = signed_headers(clinic[0].signing_secret, body) | {"webhook-signature": signature}
    # When it is posted, Then it is refused as unverified and nothing is stored
    assert client.post("/webhooks/generic/clinic-a", content=body, headers=headers).status_code == 401
    assert _count(runtime, Delivery) == 0


def test_a_non_utf8_or_deeply_nested_body_is_a_4xx_not_a_crash(runtime, client, clinic):
    # Given bodies that are not UTF-8, or JSON nested deeper than any parser allows
    latin1 = '{"id": "é", "event": "new_client_created"}'.encode("latin-1")
    nested = b'{"id": "1", "event": "x", "a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    headers = signed_headers(clinic[0].signing_secret, b"{}") | {"Content-Type": "application/json"}
    # When each is posted to the unsigned and the signed endpoints
    answers = [
        _physitrack(client, clinic, latin1).status_code,
        _physitrack(client, clinic, nested).status_code,
        client.post("/webhooks/generic/clinic-a", content=latin1, headers=headers).status_code,
    ]
    # Then each is refused with a client error, and nothing is stored
    assert answers == [400, 400, 401]
    assert _count(runtime, Delivery) == 0


def test_a_signed_and_verified_but_deeply_nested_body_is_a_400(runtime, client, clinic):
    # Given a correctly signed body nested too deeply to parse
    body = b"[" * 100_000 + b"]" * 100_000
    headers = signed_headers(clinic[0].signing_secret, body)
    # When it is posted, Then it is refused as malformed
    assert client.post("/webhooks/generic/clinic-a", content=body, headers=headers).status_code == 400


def test_a_non_ascii_cookie_or_csrf_value_is_refused_not_a_crash(client, clinic):
    # Given a session cookie and a CSRF field carrying non-ASCII text
    cookie = "ptsync_session=1:1:9999999999:é".encode()
    # When they reach the pages
    page = client.get("/orgs/clinic-a/", headers={"cookie": cookie}, follow_redirects=False)
    _, token = clinic
    client.post("/orgs/clinic-a/login", data={"token": token})
    form = client.post("/orgs/clinic-a/proposals/p1/reject", data={"csrf": "é" * 32}, follow_redirects=False)
    # Then the page sends them to log in, and the form is refused, never a 500
    assert page.status_code == 303 and page.headers["location"].endswith("/login")
    assert form.status_code == 403


def test_a_webhook_id_longer_than_the_inbox_stores_is_refused_not_truncated(runtime, client, clinic):
    # Given two events whose ids share their first 200 characters
    first = json.dumps({"id": "e" * 200 + "-one", "event": "new_client_created"}).encode()
    # When the first arrives, Then it is refused (truncating would make the two one delivery)
    answer = _physitrack(client, clinic, first)
    assert answer.status_code == 400 and "longer than 200" in answer.json()["detail"]
    signed_body = b'{"type": "x"}'
    headers = signed_headers(clinic[0].signing_secret, signed_body, msg_id="m" * 201)
    assert client.post("/webhooks/generic/clinic-a", content=signed_body, headers=headers).status_code == 400
    assert _count(runtime, Delivery) == 0


def test_the_signed_endpoint_answers_an_unknown_organisation_like_a_known_one(client, clinic):
    # Given a badly signed request to a real organisation, and one to a made-up slug
    body = b'{"type": "x"}'
    headers = signed_headers("whsec_" + "A" * 43, body)
    # When both are posted
    known = client.post("/webhooks/generic/clinic-a", content=body, headers=headers)
    unknown = client.post("/webhooks/generic/no-such-clinic", content=body, headers=headers)
    # Then the answers are identical: the endpoint does not reveal which organisations exist
    assert (
        (known.status_code, known.json())
        == (unknown.status_code, unknown.json())
        == (
            401,
            {"detail": "webhook verification failed"},
        )
    )


def test_a_burst_of_webhooks_becomes_one_run_per_interval_not_one_per_event(runtime, client, clinic, sent):
    # Given an organisation (minimum interval 60 s by default) and a worker that finishes every
    # queued run at once
    done: set[str] = set()

    def work() -> None:
        for run_id in list(sent):
            if run_id not in done:
                done.add(run_id)
                run_sync(runtime, run_id)

    # When 40 events arrive one after the other
    for n in range(40):
        body = json.dumps({"id": f"evt-{n}", "event": "new_client_created"}).encode()
        assert _physitrack(client, clinic, body).status_code == 200
        work()
    # Then they made one run; the rest wait in the inbox instead of becoming 39 more syncs
    assert _count(runtime, Run) == 1
    # When the interval has passed and the relay sends to a worker that starts the run at once
    with runtime.db.transaction() as session:
        session.execute(update(Run).values(requested_at=datetime.now(tz=UTC) - timedelta(seconds=61)))

    def start_at_once(run_id: str) -> None:
        sent(run_id)
        work()

    relay(runtime, start_at_once)
    # Then the 39 waiting events became exactly one more run, none left waiting for another
    assert _count(runtime, Run) == 2
    with runtime.db.transaction() as session:
        assert session.scalar(select(func.count()).where(Delivery.status == "pending")) == 0


def test_on_postgresql_the_inbox_timeouts_hold_inside_the_transaction_and_end_with_it(postgres_url):
    """Given a PostgreSQL store / When a transaction runs under `short_statements(2500)` / Then
    both its statement and lock timeouts are 2.5 s inside it, and the next transaction on the
    same pooled connection is back to the server's defaults."""
    from worker.store.db import Database

    database = Database(postgres_url)
    database.migrate()
    try:
        with database.transaction() as session:
            default = session.connection().exec_driver_sql("SHOW statement_timeout").scalar()
        with database.transaction() as session, short_statements(session, 2500):
            connection = session.connection()
            inside = [
                connection.exec_driver_sql(f"SHOW {name}").scalar()
                for name in ("statement_timeout", "lock_timeout")
            ]
        with database.transaction() as session:
            after = session.connection().exec_driver_sql("SHOW statement_timeout").scalar()
        assert inside == ["2500ms", "2500ms"]
        assert after == default != "2500ms"
    finally:
        database.dispose()
