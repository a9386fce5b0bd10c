"""Halaxy's webhooks as a sync trigger: `POST /webhooks/halaxy/{url_token}`.

Halaxy (developers.halaxy.com/docs/webhooks, payload example dated 2025-12-03) POSTs a FHIR
R4B subscription notification: a Bundle of type `history` whose first entry is the
SubscriptionStatus (`subscription`, `topic`, `eventsSinceSubscriptionStart`,
`notificationEvent[{eventNumber, focus}]`), and expects 200, 201 or 202. The clinic creates the
webhook in Halaxy (Settings > Integrations > Webhooks) with the URL `ptsync org webhooks SLUG`
prints, for the Appointment create, update and delete events.

Deduplicated through the inbox like every webhook: the delivery id is the subscription id with
its event numbers (a redelivery repeats both; hashed when a batch of many events makes it longer
than a stored id); without them, a hash of the body, so only
byte-identical repeats coalesce. Appointment events start a sync, incremental as the connector
is; Patient and Invoice events are stored as ignored (ptsync reads neither from Halaxy). An event
whose resource cannot be told starts a sync: a spare sync costs a few requests, a missed one
leaves a report stale.
"""

from __future__ import annotations

import hashlib
from typing import Any

from fastapi import APIRouter, BackgroundTasks, Depends, HTTPException, Request

from worker.services.deliveries import MAX_DELIVERY_ID
from worker.web.webhooks import DeliveryAnswer, _body, _json_object, _org_by_token, _record, _text

router = APIRouter(prefix="/webhooks", tags=["webhooks"])
IGNORED_RESOURCES = {"Patient", "Invoice"}


def _status_resource(document: dict[str, Any]) -> dict[str, Any]:
    if document.get("resourceType", "Bundle") != "Bundle" or document.get("type") != "history":
        raise HTTPException(400, "expected a FHIR subscription notification (a Bundle of type history)")
    entries = document.get("entry")
    first = entries[0] if isinstance(entries, list) and entries and isinstance(entries[0], dict) else {}
    status = first.get("resource")
    if not isinstance(status, dict):
        raise HTTPException(400, "the notification has no SubscriptionStatus entry")
    return status


def _events(status: dict[str, Any]) -> list[dict[str, Any]]:
    events = status.get("notificationEvent")
    return [event for event in events if isinstance(event, dict)] if isinstance(events, list) else []


def _resource_type(event: dict[str, Any]) -> str | None:
    focus = event.get("focus")
    reference = focus.get("reference") if isinstance(focus, dict) else None
    if isinstance(focus, dict) and isinstance(focus.get("type"), str):
        return focus["type"]
    parts = reference.rstrip("/").split("/") if isinstance(reference, str) else []
    return parts[-2] if len(parts) >= 2 and parts[-2] else None


def _delivery_id(status: dict[str, Any], body: bytes) -> str:
    subscription = status.get("subscription")
    reference = subscription.get("reference") if isinstance(subscription, dict) else None
    numbers = [number for number in (_text(event, "eventNumber") for event in _events(status)) if number]
    if isinstance(reference, str) and reference.strip() and numbers:
        named = f"{reference.rstrip('/').rsplit('/', 1)[-1]}:{','.join(numbers)}"
        if len(named) <= MAX_DELIVERY_ID:
            return named
        # A notification batching many events: the same subscription and events, hashed, so a
        # redelivery is still recognised (an id is never cut: two batches could share a prefix).
        return "events-sha256:" + hashlib.sha256(named.encode()).hexdigest()
    return "sha256:" + hashlib.sha256(body).hexdigest()


@router.post(
    "/halaxy/{url_token}",
    response_model=DeliveryAnswer,
    summary="Halaxy webhook (a FHIR subscription notification; the URL token identifies the organisation)",
)
def halaxy_event(
    url_token: str, request: Request, tasks: BackgroundTasks, body: bytes = Depends(_body)
) -> DeliveryAnswer:
    org = _org_by_token(request, url_token)
    if org.pms_kind != "halaxy":
        raise HTTPException(404, "this organisation does not read Halaxy")
    status = _status_resource(_json_object(body))
    kinds = {_resource_type(event) for event in _events(status)}
    known = sorted(kind for kind in kinds if kind)
    relevant = not known or None in kinds or not set(known) <= IGNORED_RESOURCES
    event = f"{'+'.join(known) or 'unknown'}-notification"
    return _record(request, tasks, org.id, "halaxy", _delivery_id(status, body), event, body, relevant)
