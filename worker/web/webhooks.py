"""Webhook endpoints: Physitrack events, FHIR subscription notifications, signed generic hooks.

Each answers 2xx only after the delivery is committed to the inbox, then relays it at once
(or, if the broker is down, the relay thread does later). Bad input gets a clear 4xx and
stores nothing: unknown webhook URL 404, oversized 413, malformed 400 (including ids longer
than the inbox stores, non-UTF-8 or too deeply nested JSON), bad or stale signature 401 (the
signed endpoint answers an unknown organisation exactly like a bad signature), a delivery id
reused for another body 409, and 503 when the inbox cannot be written within a short timeout.

Only reading the body is async; everything that touches the database or decrypts a secret
runs in the threadpool, so a slow or locked database never stalls the event loop (and with it
every other route, the login page included).
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, BackgroundTasks, HTTPException, Request
from pydantic import BaseModel
from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from starlette.concurrency import run_in_threadpool

from worker.errors import NotFound
from worker.services import credentials
from worker.services.deliveries import (
    MAX_DELIVERY_ID,
    Accepted,
    DeliveryConflict,
    Incoming,
    OrgToRelay,
    accept,
    accept_checked,
    send_quietly,
)
from worker.store.models import Organisation

router = APIRouter(prefix="/webhooks", tags=["webhooks"])
MAX_BODY_BYTES = 256 * 1024
RELEVANT_PHYSITRACK_EVENTS = ("new_client_created", "client_updated", "client_deleted", "client_merged")


class DeliveryAnswer(BaseModel):
    status: str  # accepted, duplicate, ignored
    delivery: int | None = None


async def _body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise HTTPException(413, f"body larger than {MAX_BODY_BYTES} bytes")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise HTTPException(413, f"body larger than {MAX_BODY_BYTES} bytes")
    return body


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise HTTPException(400, "the body is not UTF-8 text") from None
    except ValueError:
        raise HTTPException(400, "the body is not valid JSON") from None
    except RecursionError:
        raise HTTPException(400, "the body's JSON is nested too deeply") from None
    if not isinstance(document, dict):
        raise HTTPException(400, "the body must be a JSON object")
    return document


def _text(document: dict[str, Any], *keys: str) -> str | None:
    for key in keys:
        value = document.get(key)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
            return str(value).strip()
    return None


def _delivery_id(value: str | None, name: str) -> str:
    """A delivery id as sent: one longer than the inbox stores is refused, never truncated
    (two ids sharing their first 200 characters would otherwise collide)."""
    if value is None:
        raise HTTPException(400, f"the {name} is missing")
    if len(value) > MAX_DELIVERY_ID:
        raise HTTPException(400, f"the {name} is longer than {MAX_DELIVERY_ID} characters")
    return value


def _record(
    request: Request,
    tasks: BackgroundTasks,
    org_id: int,
    source: str,
    delivery_id: str,
    event: str,
    body: bytes,
    relevant: bool = True,
) -> DeliveryAnswer:
    runtime = request.app.state.runtime()
    status = "pending" if relevant else "ignored"
    return _answer(
        request,
        tasks,
        lambda: accept(runtime, org_id, source, delivery_id, event, body, status=status, relay=True),
        relevant,
    )


def _answer(
    request: Request, tasks: BackgroundTasks, accepting: Callable[[], Accepted], relevant: bool = True
) -> DeliveryAnswer:
    """Commit the delivery by `accepting()` (which also relays it: `accept_checked(relay=True)`)
    and answer for it; send the run's message after the answer."""
    runtime = request.app.state.runtime()
    try:
        accepted = accepting()
    except DeliveryConflict as exc:
        raise HTTPException(409, str(exc)) from None
    except DBAPIError:
        # Locked or slow database: the statement timed out. The sender retries later.
        raise HTTPException(503, "the inbox is busy: retry later", headers={"Retry-After": "5"}) from None
    if accepted.duplicate:
        return DeliveryAnswer(status="duplicate", delivery=accepted.delivery)
    if not relevant:
        return DeliveryAnswer(status="ignored", delivery=accepted.delivery)
    # Answered now (the row and its run are committed); the run's message is sent right after
    # the answer, so a slow broker can never hold the sender past its timeout. The delivery stays
    # pending until it has gone out: the relay thread catches up if this fails.
    if accepted.to_send is not None:
        tasks.add_task(send_quietly, runtime, request.app.state.send, accepted.to_send)
    return DeliveryAnswer(status="accepted", delivery=accepted.delivery)


def _org_by_token(request: Request, url_token: str) -> Organisation:
    try:
        return credentials.org_for_webhook_token(request.app.state.runtime(), url_token)
    except NotFound:
        raise HTTPException(404, "unknown webhook URL") from None


@router.post(
    "/physitrack/{url_token}",
    response_model=DeliveryAnswer,
    summary="Physitrack event (unsigned: the URL token identifies the organisation)",
)
async def physitrack_event(url_token: str, request: Request, tasks: BackgroundTasks) -> DeliveryAnswer:
    body = await _body(request)
    return await run_in_threadpool(_physitrack_event, url_token, request, tasks, body)


def _physitrack_event(
    url_token: str, request: Request, tasks: BackgroundTasks, body: bytes
) -> DeliveryAnswer:
    org = _org_by_token(request, url_token)
    document = _json_object(body)
    event_id = _text(document, "id", "event_id")
    event = _text(document, "event", "event_type", "type")
    if event_id is None:
        raise HTTPException(400, "the event has no id (expected 'id' or 'event_id')")
    if event is None:
        raise HTTPException(400, "the event has no type (expected 'event', 'event_type' or 'type')")
    relevant = event in RELEVANT_PHYSITRACK_EVENTS
    event_id = _delivery_id(event_id, "event id")
    return _record(request, tasks, org.id, "physitrack", event_id, event, body, relevant)


@router.post(
    "/fhir/{url_token}",
    response_model=DeliveryAnswer,
    summary="FHIR subscription notification (a Bundle; the URL token identifies the organisation)",
)
async def fhir_notification(url_token: str, request: Request, tasks: BackgroundTasks) -> DeliveryAnswer:
    body = await _body(request)
    return await run_in_threadpool(_fhir_notification, url_token, request, tasks, body)


def _fhir_notification(
    url_token: str, request: Request, tasks: BackgroundTasks, body: bytes
) -> DeliveryAnswer:
    org = _org_by_token(request, url_token)
    document = _json_object(body)
    if document.get("resourceType") != "Bundle":
        raise HTTPException(400, "expected a FHIR Bundle (subscription notification)")
    bundle_id = _text(document, "id")
    if bundle_id is None:
        raise HTTPException(400, "the notification Bundle has no id")
    bundle_id = _delivery_id(bundle_id, "Bundle id")
    return _record(request, tasks, org.id, "fhir", bundle_id, "subscription-notification", body)


@router.post(
    "/generic/{slug}",
    response_model=DeliveryAnswer,
    summary="Any PMS or integration platform, signed per the Standard Webhooks spec",
)
async def signed_event(slug: str, request: Request, tasks: BackgroundTasks) -> DeliveryAnswer:
    body = await _body(request)
    return await run_in_threadpool(_signed_event, slug, request, tasks, body)


_UNKNOWN_SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
"""Verifies for an unknown organisation too, so it takes as long and answers the same."""


def _signed_event(slug: str, request: Request, tasks: BackgroundTasks, body: bytes) -> DeliveryAnswer:
    runtime = request.app.state.runtime()
    headers = dict(request.headers)

    def verified(connection: Connection) -> Incoming:
        # Inside the inbox's transaction: the lookup, the signature check (CPU only) and the
        # insert share one transaction. A refusal raises, so the transaction stores nothing.
        signer = credentials.webhook_signer(connection, slug)
        secret = credentials.signing_secret(runtime, signer.secret_encrypted) if signer is not None else None
        try:
            Webhook(secret or _UNKNOWN_SECRET).verify(body, headers, json_parse=False)
            if secret is None:
                raise WebhookVerificationError("unknown organisation")
        except (WebhookVerificationError, ValueError):
            # Malformed signature or timestamp, non-UTF-8 body, unknown organisation, no secret
            # set: one answer for all, so the endpoint does not reveal which organisations exist.
            raise HTTPException(401, "webhook verification failed") from None
        delivery_id = _delivery_id(headers.get("webhook-id"), "webhook-id")
        document = _json_object(body)
        event = _text(document, "type", "event") or "generic"
        org = OrgToRelay(signer.org_id, signer.paused_at, signer.webhook_min_interval_seconds)
        return Incoming(signer.org_id, delivery_id, event, org)

    return _answer(request, tasks, lambda: accept_checked(runtime, "generic", body, verified, relay=True))
