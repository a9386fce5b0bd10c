"""Webhooks: committed before acknowledged, deduplicated, verified, and nothing stored on bad input."""

from __future__ import annotations

import base64
import json
import threading
import time

import pytest
from sqlalchemy import func, select

from tests.web.conftest import signed_headers
from worker.store.models import Delivery, Run


def _count(runtime, model) -> int:
    with runtime.db.transaction() as session:
        return session.scalar(select(func.count()).select_from(model))


def _nothing_stored(runtime) -> bool:
    return _count(runtime, Delivery) == 0 and _count(runtime, Run) == 0


def _physitrack(client, clinic, body) -> object:
    credentials, _ = clinic
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post(
        f"/webhooks/physitrack/{credentials.url_token}",
        content=payload,
        headers={"Content-Type": "application/json"},
    )


def _signed(
    clinic, body: bytes, *, msg_id: str = "msg_1", timestamp: float | None = None, secret: str | None = None
) -> dict[str, str]:
    credentials, _ = clinic
    return signed_headers(secret or credentials.signing_secret, body, msg_id, timestamp)


def test_a_new_client_event_is_committed_and_relayed_into_one_sync(runtime, client, clinic, sent):
    # Given a Physitrack event for the organisation's webhook URL
    # When it arrives
    response = _physitrack(client, clinic, {"id": "evt-1", "event": "new_client_created", "client_id": 42})
    # Then it is acknowledged after being stored, and one sync was requested
    assert response.status_code == 200 and response.json()["status"] == "accepted"
    with runtime.db.transaction() as session:
        [delivery] = session.scalars(select(Delivery)).all()
        [run] = session.scalars(select(Run)).all()
        assert (delivery.status, delivery.run_id, run.status) == ("relayed", run.id, "queued")
    assert sent == [run.id]


def test_the_same_event_delivered_again_is_acknowledged_and_causes_no_second_run(
    runtime, client, clinic, sent
):
    body = {"id": "evt-1", "event": "new_client_created"}
    assert _physitrack(client, clinic, body).json()["status"] == "accepted"
    again = _physitrack(client, clinic, body)
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    assert _count(runtime, Delivery) == 1 and _count(runtime, Run) == 1


def test_duplicate_deliveries_sent_concurrently_cause_one_run(runtime, client, clinic, sent):
    body = {"id": "evt-7", "event": "new_client_created"}
    answers: list[int] = []
    barrier = threading.Barrier(8)

    def deliver() -> None:
        barrier.wait()
        answers.append(_physitrack(client, clinic, body).status_code)

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [200] * 8
    assert _count(runtime, Delivery) == 1 and _count(runtime, Run) == 1


def test_a_burst_of_events_for_one_organisation_coalesces_into_one_run(runtime, client, clinic, sent):
    """Given ten events for one organisation / When each is accepted and relayed / Then one run
    is queued and its message goes out once (the later events join it without sending it again:
    each extra message would make a worker claim, or postpone, the same run)."""
    for number in range(10):
        assert (
            _physitrack(client, clinic, {"id": f"evt-{number}", "event": "new_client_created"}).status_code
            == 200
        )
    assert _count(runtime, Delivery) == 10
    assert _count(runtime, Run) == 1
    assert len(sent) == 1


def test_an_event_joining_a_run_whose_message_never_went_out_sends_it(runtime, client, clinic, sent):
    """Given the broker refused the message of the run the first event queued / When a second
    event joins that run / Then its message is sent (the run is not left to the re-driver), and
    both deliveries are relayed to it."""
    refusals = []

    def broker_down_once(run_id: str) -> None:
        if not refusals:
            refusals.append(run_id)
            raise ConnectionError("broker down")
        sent(run_id)

    client.app.state.send = broker_down_once
    assert _physitrack(client, clinic, {"id": "evt-1", "event": "new_client_created"}).status_code == 200
    assert sent == [] and len(refusals) == 1
    assert _physitrack(client, clinic, {"id": "evt-2", "event": "new_client_created"}).status_code == 200
    assert sent == refusals
    with runtime.db.transaction() as session:
        assert set(session.scalars(select(Delivery.status))) == {"relayed"}
        assert set(session.scalars(select(Delivery.run_id))) == set(refusals)


def test_events_that_do_not_concern_sharing_are_acknowledged_but_start_nothing(runtime, client, clinic, sent):
    response = _physitrack(client, clinic, {"id": "evt-9", "event": "program_assigned"})
    assert response.json()["status"] == "ignored"
    assert _count(runtime, Run) == 0 and sent == []


def test_an_unknown_webhook_url_is_404_and_stores_nothing(runtime, client, clinic):
    response = client.post(
        "/webhooks/physitrack/not-a-token", json={"id": "1", "event": "new_client_created"}
    )
    assert response.status_code == 404
    assert _nothing_stored(runtime)


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b"[1, 2]", 400, "must be a JSON object"),
        (json.dumps({"event": "new_client_created"}).encode(), 400, "has no id"),
        (json.dumps({"id": "e1"}).encode(), 400, "has no type"),
        (
            json.dumps({"id": "e1", "event": "new_client_created", "pad": "x" * 300_000}).encode(),
            413,
            "larger than",
        ),
    ],
)
def test_a_malformed_or_oversized_event_is_refused_and_stores_nothing(
    runtime, client, clinic, body, status, reason
):
    response = _physitrack(client, clinic, body)
    assert response.status_code == status and reason in response.json()["detail"]
    assert _nothing_stored(runtime)


def test_a_fhir_subscription_notification_requests_a_sync(runtime, client, clinic, sent):
    credentials, _ = clinic
    bundle = {"resourceType": "Bundle", "id": "notif-1", "type": "subscription-notification", "entry": []}
    response = client.post(f"/webhooks/fhir/{credentials.url_token}", json=bundle)
    assert response.status_code == 200 and len(sent) == 1
    refused = client.post(
        f"/webhooks/fhir/{credentials.url_token}", json={"resourceType": "Patient", "id": "x"}
    )
    assert refused.status_code == 400 and _count(runtime, Delivery) == 1


def test_a_correctly_signed_webhook_is_accepted(runtime, client, clinic, sent):
    body = json.dumps({"type": "appointment.updated"}).encode()
    response = client.post("/webhooks/generic/clinic-a", content=body, headers=_signed(clinic, body))
    assert response.status_code == 200 and response.json()["status"] == "accepted"
    assert len(sent) == 1


def test_a_bad_signature_is_401_and_stores_nothing(runtime, client, clinic):
    body = json.dumps({"type": "appointment.updated"}).encode()
    other_secret = "whsec_" + base64.b64encode(b"x" * 32).decode()
    response = client.post(
        "/webhooks/generic/clinic-a", content=body, headers=_signed(clinic, body, secret=other_secret)
    )
    assert response.status_code == 401 and "verification failed" in response.json()["detail"]
    assert _nothing_stored(runtime)


@pytest.mark.parametrize("offset", [-3600, 3600])
def test_a_stale_or_future_timestamp_is_401_and_stores_nothing(runtime, client, clinic, offset):
    body = json.dumps({"type": "appointment.updated"}).encode()
    response = client.post(
        "/webhooks/generic/clinic-a",
        content=body,
        headers=_signed(clinic, body, timestamp=time.time() + offset),
    )
    assert response.status_code == 401
    assert _nothing_stored(runtime)


def test_a_replayed_id_with_another_body_is_409_and_changes_nothing(runtime, client, clinic, sent):
    first = json.dumps({"type": "appointment.updated", "n": 1}).encode()
    assert (
        client.post("/webhooks/generic/clinic-a", content=first, headers=_signed(clinic, first)).status_code
        == 200
    )
    replay = json.dumps({"type": "appointment.updated", "n": 2}).encode()
    response = client.post("/webhooks/generic/clinic-a", content=replay, headers=_signed(clinic, replay))
    assert response.status_code == 409
    repeat = client.post("/webhooks/generic/clinic-a", content=first, headers=_signed(clinic, first))
    assert repeat.json()["status"] == "duplicate"
    assert _count(runtime, Delivery) == 1 and _count(runtime, Run) == 1


def test_a_signed_webhook_for_an_unknown_organisation_is_refused_like_a_bad_signature(
    runtime, client, clinic
):
    body = b"{}"
    response = client.post("/webhooks/generic/nobody", content=body, headers=_signed(clinic, body))
    assert response.status_code == 401
    assert _nothing_stored(runtime)


def test_missing_signature_headers_are_401(runtime, client, clinic):
    response = client.post("/webhooks/generic/clinic-a", json={"type": "x"})
    assert response.status_code == 401
    assert _nothing_stored(runtime)
