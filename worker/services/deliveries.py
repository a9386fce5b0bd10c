"""The inbox/outbox: record a webhook or schedule tick, then relay it into a sync request.

A delivery is acknowledged only after its row is committed. The relay turns pending rows into
(coalesced) queued runs and sends their `sync_org` messages; a row stays pending until the
message has gone out, so a Redis outage or a crash between commit and send loses nothing.
Sending twice is harmless: runs coalesce and `sync_org` is idempotent.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from worker.clock import utcnow
from worker.runtime import Runtime
from worker.store import repositories as repo
from worker.store.models import Delivery, Organisation

log = logging.getLogger(__name__)


class DeliveryConflict(Exception):
    """The delivery id was already used for a different body (a replay or a sender bug)."""


@dataclass(frozen=True)
class Accepted:
    delivery: int
    duplicate: bool


def body_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def accept(
    runtime: Runtime,
    org_id: int,
    source: str,
    delivery_id: str,
    event: str,
    body: bytes,
    status: str = "pending",
) -> Accepted:
    """Commit the delivery (or recognise a repeat of it). Raises DeliveryConflict on a replay."""
    digest = body_hash(body)
    now = utcnow()
    try:
        with runtime.db.transaction() as session:
            row = Delivery(
                org_id=org_id,
                source=source,
                delivery_id=delivery_id[:200],
                event=event[:64],
                body_hash=digest,
                status=status,
                received_at=now,
            )
            session.add(row)
            session.flush()
            return Accepted(row.id, duplicate=False)
    except IntegrityError:
        with runtime.db.transaction() as session:
            existing = session.scalar(
                select(Delivery).where(
                    Delivery.org_id == org_id,
                    Delivery.source == source,
                    Delivery.delivery_id == delivery_id[:200],
                )
            )
            if existing is None:
                raise
            if existing.body_hash != digest:
                raise DeliveryConflict(
                    f"delivery id {delivery_id!r} was already used for another body"
                ) from None
            return Accepted(existing.id, duplicate=True)


def relay(runtime: Runtime, send: Callable[[str], None], *, only: int | None = None, limit: int = 200) -> int:
    """Turn pending deliveries into sync requests; returns how many were relayed.

    `send(run_id)` enqueues the run's message; if it raises, the delivery stays pending.
    """
    with runtime.db.transaction() as session:
        query = select(Delivery.id, Delivery.org_id).where(Delivery.status == "pending")
        if only is not None:
            query = query.where(Delivery.id == only)
        pending = list(session.execute(query.order_by(Delivery.received_at).limit(limit)))
    relayed = 0
    for delivery_id, org_id in pending:
        with runtime.db.transaction() as session:
            org = session.get(Organisation, org_id)
            row = session.get(Delivery, delivery_id)
            if org is None or row is None or row.status != "pending":
                continue
            if org.paused_at is not None:  # kept for the record, never turned into a sync
                row.status = "skipped"
                row.relayed_at = utcnow()
                continue
            run, _ = repo.request_run(
                session, org, f"{row.source}:{row.event}"[:32], row.source, utcnow(), delivery=row.delivery_id
            )
            run_id = run.id
        send(run_id)  # may raise: the row stays pending and the next relay sends again
        with runtime.db.transaction() as session:
            row = session.get(Delivery, delivery_id)
            if row is not None and row.status == "pending":
                row.status = "relayed"
                row.relayed_at = utcnow()
                row.run_id = run_id
        relayed += 1
    return relayed


def relay_quietly(runtime: Runtime, send: Callable[[str], None], **kwargs) -> int:
    """Relay, logging (not raising) when the broker is unreachable: the rows wait."""
    try:
        return relay(runtime, send, **kwargs)
    except Exception as exc:  # broker down, database blip: the next pass retries
        log.warning("relay postponed: %s", exc.__class__.__name__)
        return 0
