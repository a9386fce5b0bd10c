"""Halaxy webhooks: Appointment notifications start one sync, repeats and other events do not."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from tests.clinic_files import write_clinic
from worker.services.credentials import rotate_webhook_credentials
from worker.services.orgs import NewOrganisation, add_organisation
from worker.store.models import Delivery, Run


@pytest.fixture
def halaxy_clinic(runtime, tmp_path):
    _, ptdirect = write_clinic(tmp_path / "clinic-h")
    add_organisation(
        runtime,
        NewOrganisation(
            slug="clinic-h",
            pms="halaxy",
            pms_client_id="cid",
            pms_client_secret="secret",
            ptdirect="file",
            ptdirect_path=str(ptdirect),
        ),
    )
    return rotate_webhook_credentials(runtime, "clinic-h")


def _notification(event_number: str, focus: str | None = "Appointment/700000001") -> dict:
    """Halaxy's documented payload: a history Bundle whose first entry is the SubscriptionStatus."""
    event = {"eventNumber": event_number, "timestamp": "2025-12-03T01:48:04+00:00"}
    if focus is not None:
        event["focus"] = {"reference": f"https://au-api.halaxy.com/main/{focus}"}
    return {
        "timestamp": "2025-12-03T01:48:04+00:00",
        "type": "history",
        "link": [],
        "entry": [
            {
                "fullUrl": "550e8400-e29b-41d4-a716-446655440000",
                "resource": {
                    "subscription": {
                        "reference": "https://au-api.halaxy.com/main/Subscription/d3f8a2c4",
                        "type": "Subscription",
                    },
                    "topic": {
                        "reference": "https://au-api.halaxy.com/main/SubscriptionTopic/4e29",
                        "type": "SubscriptionTopic",
                    },
                    "status": "active",
                    "type": "event-notification",
                    "eventsSinceSubscriptionStart": event_number,
                    "notificationEvent": [event],
                },
            }
        ],
    }


def _post(client, credentials, body) -> object:
    return client.post(
        f"/webhooks/halaxy/{credentials.url_token}",
        content=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )


def _count(runtime, model) -> int:
    with runtime.db.transaction() as session:
        return session.scalar(select(func.count()).select_from(model))


def test_an_appointment_notification_starts_one_sync_and_its_redelivery_none(
    runtime, client, halaxy_clinic, sent
):
    # Given Halaxy's notification of a new appointment
    # When it arrives twice (a redelivery)
    first = _post(client, halaxy_clinic, _notification("1"))
    again = _post(client, halaxy_clinic, _notification("1"))
    # Then it was stored once, under the subscription and event number, and one sync was queued
    assert (first.status_code, first.json()["status"]) == (200, "accepted")
    assert again.json()["status"] == "duplicate"
    with runtime.db.transaction() as session:
        [delivery] = session.scalars(select(Delivery)).all()
        [run] = session.scalars(select(Run)).all()
        assert (delivery.source, delivery.delivery_id, delivery.event) == (
            "halaxy",
            "d3f8a2c4:1",
            "Appointment-notification",
        )
    assert sent == [run.id]


def test_patient_and_invoice_notifications_are_recorded_but_start_no_sync(
    runtime, client, halaxy_clinic, sent
):
    answers = [
        _post(client, halaxy_clinic, _notification("2", "Patient/300000001")).json()["status"],
        _post(client, halaxy_clinic, _notification("3", "Invoice/55")).json()["status"],
    ]
    assert answers == ["ignored", "ignored"]
    assert _count(runtime, Delivery) == 2 and _count(runtime, Run) == 0 and sent == []


def test_a_notification_without_a_focus_still_starts_a_sync(runtime, client, halaxy_clinic, sent):
    assert _post(client, halaxy_clinic, _notification("4", focus=None)).json()["status"] == "accepted"
    assert _count(runtime, Run) == 1


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"resourceType": "Patient"}, "expected a FHIR subscription notification (a Bundle of type history)"),
        ({"type": "history", "entry": []}, "the notification has no SubscriptionStatus entry"),
    ],
)
def test_a_malformed_notification_is_refused_and_stores_nothing(runtime, client, halaxy_clinic, body, detail):
    answer = _post(client, halaxy_clinic, body)
    assert (answer.status_code, answer.json()["detail"]) == (400, detail)
    assert _count(runtime, Delivery) == 0


def test_an_organisation_that_does_not_read_halaxy_refuses_halaxy_notifications(runtime, client, clinic):
    credentials, _ = clinic
    answer = _post(client, credentials, _notification("1"))
    assert answer.status_code == 404 and _count(runtime, Delivery) == 0


def test_a_burst_of_halaxy_notifications_waits_out_the_minimum_interval_like_other_webhooks(
    runtime, client, halaxy_clinic, sent
):
    """Given a Halaxy organisation (minimum interval 60 s by default) whose last run was just
    requested and has finished,
    When five more appointment notifications arrive,
    Then none of them starts a run yet: they wait in the inbox, as every other webhook does,
    instead of one sync each."""
    from worker.clock import utcnow

    assert _post(client, halaxy_clinic, _notification("10")).json()["status"] == "accepted"
    [first] = sent
    with runtime.db.transaction() as session:  # its sync finished (Halaxy is not reachable here)
        run = session.get(Run, first)
        run.status, run.started_at, run.finished_at = "succeeded", utcnow(), utcnow()

    for number in range(11, 16):
        assert _post(client, halaxy_clinic, _notification(str(number))).json()["status"] == "accepted"

    assert _count(runtime, Run) == 1 and sent == [first]
    with runtime.db.transaction() as session:
        waiting = session.scalars(select(Delivery.status).where(Delivery.status == "pending")).all()
    assert len(waiting) == 5
