"""The inbox/outbox: record a webhook or schedule tick, then relay it into a sync request.

A delivery is acknowledged only after its row is committed. The relay turns pending rows into
(coalesced) queued runs and sends their `sync_org` messages; a row stays pending until the
message has gone out, so a Redis outage or a crash between commit and send loses nothing.
A run's message goes out once (its `enqueued_at` says when); sending twice would be harmless
(runs coalesce and `sync_org` is idempotent), only wasteful.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, bindparam, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from worker.clock import new_id, utcnow
from worker.errors import Conflict
from worker.runtime import Runtime
from worker.services import poll
from worker.services.poll import WEBHOOK_SOURCES
from worker.store import repositories as repo
from worker.store.db import short_statements
from worker.store.models import Delivery, Organisation, Run

log = logging.getLogger(__name__)
MAX_DELIVERY_ID = 200
"""The stored length of a delivery id; longer ids are refused by the endpoints, never cut."""
INBOX_TIMEOUT_MS = 5000
"""How long the inbox insert may wait for the database before the webhook is answered 503."""


class DeliveryConflict(Conflict):
    """The delivery id was already used for a different body (a replay or a sender bug)."""


@dataclass(frozen=True)
class ToSend:
    """A run queued (or found unsent) for deliveries, whose message goes out once the transaction
    that decided it has committed; `covered` are marked relayed after it has (`send_and_mark`)."""

    run_id: str
    covered: list[int]


@dataclass(frozen=True)
class Accepted:
    delivery: int
    duplicate: bool
    to_send: ToSend | None = None
    """With `relay=True`: the run to send for this delivery (None: it waits, was skipped or
    joined a run whose message went out, or was a duplicate)."""


def body_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


@dataclass(frozen=True)
class OrgToRelay:
    """What the relay needs of a delivery's organisation (read with the delivery, or with the
    signed endpoint's lookup: one statement); `id` and `webhook_min_interval_seconds` are all
    that `_must_wait` and `request_run` use."""

    id: int
    paused_at: datetime | None
    webhook_min_interval_seconds: int | None


@dataclass(frozen=True)
class Incoming:
    """What identifies a delivery in the inbox, beyond its source and body."""

    org_id: int
    delivery_id: str
    event: str
    org: OrgToRelay | None = None
    """What the relay needs of the organisation, when `check` read it (else `accept_checked`
    reads it when it relays)."""


def accept(
    runtime: Runtime,
    org_id: int,
    source: str,
    delivery_id: str,
    event: str,
    body: bytes,
    status: str = "pending",
    *,
    relay: bool = False,
) -> Accepted:
    """Commit the delivery (or recognise a repeat of it). Raises DeliveryConflict on a replay,
    and ValueError for an id longer than the inbox stores (`accept_checked` checks it)."""
    incoming = Incoming(org_id, delivery_id, event)
    return accept_checked(runtime, source, body, lambda _connection: incoming, status, relay=relay)


def accept_checked(
    runtime: Runtime,
    source: str,
    body: bytes,
    check: Callable[[Connection], Incoming],
    status: str = "pending",
    *,
    relay: bool = False,
) -> Accepted:
    """`accept`, where `check(connection)` first identifies the delivery inside the inbox's own
    transaction: a signed webhook's organisation is looked up and its signature verified there,
    one transaction instead of two. If `check` raises, the transaction rolls back and nothing is
    stored; otherwise the insert follows under the short timeouts (a refused request costs no
    round trip for setting them).

    `relay=True` (the webhook endpoints): a pending delivery is also relayed in this same
    transaction, as `relay` would decide it a moment later in its own (queued into a run, left
    waiting for its organisation's minimum interval, or skipped for a paused organisation), and
    `Accepted.to_send` says which run's message the caller sends after the commit
    (`send_and_mark`). The delivery stays pending until that message has gone out, so a broker
    that is down, or a process that dies before sending, loses nothing: the relay thread finds
    it pending and sends the run's message then. One transaction for what took two saves the
    relay's own BEGIN, COMMIT and the read of the delivery it had just written."""
    digest = body_hash(body)
    now = utcnow()
    incoming: Incoming | None = None
    try:
        with runtime.db.transaction() as session:
            connection = session.connection()
            incoming = check(connection)
            if len(incoming.delivery_id) > MAX_DELIVERY_ID:
                raise ValueError(f"delivery id longer than {MAX_DELIVERY_ID} characters")
            values = {
                "org_id": incoming.org_id,
                "source": source,
                "delivery_id": incoming.delivery_id,
                "event": incoming.event[:64],
                "body_hash": digest,
                "status": status,
                "received_at": now,
            }
            with short_statements(connection, INBOX_TIMEOUT_MS):
                delivery = connection.execute(_INSERT_DELIVERY, values).inserted_primary_key[0]
                if not relay or status != "pending":
                    return Accepted(delivery, duplicate=False)
                org = incoming.org
                if org is None:
                    found = connection.execute(_ORG_TO_RELAY, {"org_id": incoming.org_id}).first()
                    org = OrgToRelay(incoming.org_id, found.paused_at, found.webhook_min_interval_seconds)
                pending = _Pending(delivery, source, values["event"], incoming.delivery_id, org)
                decided = _relay_in(session, pending, now)
            to_send = decided if isinstance(decided, ToSend) else None
            return Accepted(delivery, duplicate=False, to_send=to_send)
    except IntegrityError:
        if incoming is None:
            raise
        with runtime.db.engine.begin() as connection, short_statements(connection, INBOX_TIMEOUT_MS):
            existing = connection.execute(
                _STORED_DELIVERY,
                {"org_id": incoming.org_id, "source": source, "delivery_id": incoming.delivery_id},
            ).first()
            if existing is None:
                raise
            if existing.body_hash != digest:
                raise DeliveryConflict(
                    f"delivery id {incoming.delivery_id!r} was already used for another body"
                ) from None
            return Accepted(existing.id, duplicate=True)


def relay(runtime: Runtime, send: Callable[[str], None], *, only: int | None = None, limit: int = 200) -> int:
    """Turn pending deliveries into sync requests; returns how many were relayed.

    `send(run_id)` enqueues the run's message; if it raises, the delivery stays pending.
    A webhook for an organisation whose last run was requested less than its
    `webhook_min_interval_seconds` ago waits (pending) unless a queued run can take it: a burst
    of webhooks becomes one run now and at most one per interval after, never one per event.
    `only`: relay this one delivery (a webhook just accepted), deciding everything in its own
    transaction.
    """
    if only is not None:
        return _relay_one(runtime, send, only)
    with runtime.db.transaction() as session:
        waiting = _orgs_within_webhook_interval(session, utcnow())
        query = select(Delivery.id).where(Delivery.status == "pending")
        if waiting:
            query = query.where(or_(Delivery.source.not_in(WEBHOOK_SOURCES), Delivery.org_id.not_in(waiting)))
        pending = list(session.scalars(query.order_by(Delivery.received_at).limit(limit)))
    return sum(_relay_one(runtime, send, delivery_id) for delivery_id in pending)


@dataclass(frozen=True)
class _Pending:
    """A pending delivery as the relay decides it: its row's id, source, event and id as sent,
    and its organisation."""

    id: int
    source: str
    event: str
    delivery_id: str
    org: OrgToRelay


def _relay_one(runtime: Runtime, send: Callable[[str], None], delivery_id: int) -> int:
    """Relay one pending delivery (and the webhooks of its organisation waiting with it);
    returns how many deliveries it relayed."""
    with runtime.db.transaction() as session:
        # Decided in this transaction, from what it reads: another relay (the relay thread, or
        # another webhook's task covering this one) may have relayed it, and the organisation
        # may have been paused, since the webhook was accepted.
        row = session.connection().execute(_DELIVERY_TO_RELAY, {"delivery_id": delivery_id}).first()
        if row is None or row.status != "pending":
            return 0
        org = OrgToRelay(row.org_id, row.paused_at, row.webhook_min_interval_seconds)
        pending = _Pending(delivery_id, row.source, row.event, row.delivery_id, org)
        decided = _relay_in(session, pending, utcnow())
    return decided if isinstance(decided, int) else send_and_mark(runtime, send, decided)


def _relay_in(session: Session, pending: _Pending, now: datetime) -> int | ToSend:
    """The relay's decision for one pending delivery, in the caller's transaction: the number of
    deliveries relayed now (0: it waits for its organisation's minimum interval, or was skipped
    for a paused organisation; more when it joined a run whose message already went out), or
    the run whose message must go out after the commit, with the deliveries it covers."""
    connection = session.connection()  # Core statements: see `_INSERT_DELIVERY`
    org = pending.org
    if org.paused_at is not None:  # kept for the record, never turned into a sync
        connection.execute(_MARK_SKIPPED, {"delivery": pending.id, "now": now})
        return 0
    covered, queued = [pending.id], repo.LOOK
    if pending.source in WEBHOOK_SOURCES:
        wait, queued = _must_wait(session, org, now)
        if wait:
            return 0  # decided again here: the queued run it was to join may have started
        # Every webhook of this organisation waiting now is covered by this one run (it starts
        # after they arrived); relaying them one by one could let the run start in between and
        # leave the rest waiting for another interval.
        covered = list(connection.execute(_WAITING_WEBHOOKS, {"org_id": org.id}).scalars())
    run, created = poll.request_run(
        session,
        org,
        f"{pending.source}:{pending.event}"[:32],
        pending.source,
        now,
        full=pending.source == "schedule" and pending.event == "full",  # a queued poll becomes one
        queued=queued,
        delivery=pending.delivery_id,
    )
    # A burst of webhooks joins one queued run: sending its message again for each of them
    # would only make workers claim (and, while the organisation's previous run still works,
    # postpone) the same run over and over. A run whose message did not go out (the broker was
    # down) is sent; one lost after it went out is the re-driver's.
    if not created and run.enqueued_at is not None:
        return _mark_relayed(connection, covered, run.id, now)
    return ToSend(run.id, covered)


def send_and_mark(runtime: Runtime, send: Callable[[str], None], to_send: ToSend) -> int:
    """Send the run's message, then mark the run sent and the deliveries it covers relayed;
    returns how many it marked. If `send` raises, the deliveries stay pending and the next
    relay sends again."""
    send(to_send.run_id)
    with runtime.db.engine.begin() as connection:  # Core: nothing here needs an ORM session
        now = utcnow()
        # The run's row first, then the deliveries', in two statements, as every relay
        # transaction locks them (`repo._join`, then `_mark_relayed`). One statement with the
        # run's UPDATE as an unreferenced WITH locked them the other way round (PostgreSQL runs
        # such a WITH after the main statement) and deadlocked with a relay joining the run.
        connection.execute(_MARK_SENT, {"run_id": to_send.run_id, "now": now})
        return _mark_relayed(connection, to_send.covered, to_send.run_id, now)


def send_quietly(runtime: Runtime, send: Callable[[str], None], to_send: ToSend) -> int:
    """`send_and_mark`, logging (not raising) when the broker is unreachable: the rows wait
    pending for the relay thread."""
    try:
        return send_and_mark(runtime, send, to_send)
    except Exception as exc:  # broker down, database blip: the relay thread retries
        log.warning("relay postponed: %s", exc.__class__.__name__)
        return 0


def _mark_relayed(connection: Connection, covered: list[int], run_id: str, now: datetime) -> int:
    result = connection.execute(_MARK_RELAYED, {"covered": covered, "run_id": run_id, "now": now})
    return result.rowcount or 0


# Every webhook runs these: built once (building one cost about as much as running it), and
# on the session's connection (the same transaction, without the ORM session's own work for each
# statement, about 40 µs: none of them needs it, nothing they touch is held in the session).
_INSERT_DELIVERY = insert(Delivery.__table__)
"""A Core INSERT: its id comes back by RETURNING where the database has it and by the cursor's
last row id on a SQLite older than 3.35 (Debian 11 and RHEL 9 ship 3.34), as the ORM's did."""
_STORED_DELIVERY = select(Delivery.id, Delivery.body_hash).where(
    Delivery.org_id == bindparam("org_id"),
    Delivery.source == bindparam("source"),
    Delivery.delivery_id == bindparam("delivery_id"),
)
_ORG_TO_RELAY = select(Organisation.paused_at, Organisation.webhook_min_interval_seconds).where(
    Organisation.id == bindparam("org_id")
)
_DELIVERY_TO_RELAY = (
    select(
        Delivery.status,
        Delivery.source,
        Delivery.event,
        Delivery.delivery_id,
        Delivery.org_id,
        Organisation.paused_at,
        Organisation.webhook_min_interval_seconds,
    )
    .join(Organisation, Organisation.id == Delivery.org_id)
    .where(Delivery.id == bindparam("delivery_id"))
)
# The updates are Core statements on the tables (the session runs them without the ORM's
# bulk-statement machinery; nothing in it needs synchronising with them).
_DELIVERIES = Delivery.__table__
_MARK_SKIPPED = (
    update(_DELIVERIES)
    .where(_DELIVERIES.c.id == bindparam("delivery"), _DELIVERIES.c.status == "pending")
    .values(status="skipped", relayed_at=bindparam("now"))
)
_NEWEST_REQUEST = (
    select(Run.requested_at)
    .where(Run.org_id == bindparam("org_id"))
    .order_by(Run.requested_at.desc(), Run.id.desc())
    .limit(1)
)
_WAITING_WEBHOOKS = select(Delivery.id).where(
    Delivery.org_id == bindparam("org_id"),
    Delivery.status == "pending",
    Delivery.source.in_(WEBHOOK_SOURCES),
)
_MARK_SENT = (
    update(Run.__table__)
    .where(Run.__table__.c.id == bindparam("run_id"))
    .values(enqueued_at=bindparam("now"))
)
_MARK_RELAYED = (
    update(_DELIVERIES)
    .where(_DELIVERIES.c.id.in_(bindparam("covered", expanding=True)), _DELIVERIES.c.status == "pending")
    .values(status="relayed", relayed_at=bindparam("now"), run_id=bindparam("run_id"))
)


def _must_wait(session: Session, org: OrgToRelay, now: datetime) -> tuple[bool, Run | None]:
    """Whether a webhook for `org` must wait: no queued run to join, and its newest run was
    requested less than its minimum interval ago. Also returns the queued run it read (or None,
    or `repo.LOOK` when it read none), so queuing does not read it again."""
    interval = timedelta(seconds=org.webhook_min_interval_seconds or 0)
    if interval <= timedelta(0):
        return False, repo.LOOK
    queued = repo.queued_run(session, org.id)
    if queued is not None:
        return False, queued
    newest = session.connection().scalar(_NEWEST_REQUEST, {"org_id": org.id})  # not the run's report
    return newest is not None and newest > now - interval, None


def _orgs_within_webhook_interval(session: Session, now: datetime) -> set[int]:
    """The organisations whose pending webhooks must wait (see `_must_wait`), in two grouped
    queries, so their rows do not take the batch's places from organisations that may go."""
    pending = select(Delivery.org_id).where(
        Delivery.status == "pending", Delivery.source.in_(WEBHOOK_SOURCES)
    )
    queued = set(
        session.scalars(select(Run.org_id).where(Run.status == repo.QUEUED, Run.org_id.in_(pending)))
    )
    newest_runs = session.execute(
        select(Organisation.id, Organisation.webhook_min_interval_seconds, func.max(Run.requested_at))
        .join(Run, Run.org_id == Organisation.id)
        .where(Organisation.id.in_(pending))
        .group_by(Organisation.id, Organisation.webhook_min_interval_seconds)
    )
    return {
        org_id
        for org_id, seconds, newest in newest_runs
        if org_id not in queued
        and seconds
        and newest is not None
        and newest > now - timedelta(seconds=seconds)
    }


def relay_quietly(runtime: Runtime, send: Callable[[str], None], **kwargs) -> int:
    """Relay, logging (not raising) when the broker is unreachable: the rows wait."""
    try:
        return relay(runtime, send, **kwargs)
    except Exception as exc:  # broker down, database blip: the next pass retries
        log.warning("relay postponed: %s", exc.__class__.__name__)
        return 0


def start_manual_sync(
    runtime: Runtime, org_id: int, send: Callable[[str], None], source: str = "api"
) -> tuple[int, str | None]:
    """A person asked for a sync (API or page): record it like a webhook, relay it now.

    Returns (delivery id, run id); the run id is None when the broker is down (the relay sends
    it later) and the same queued run when one was already waiting.
    """
    accepted = accept(runtime, org_id, source, new_id(), "manual", b"")
    relay_quietly(runtime, send, only=accepted.delivery)
    with runtime.db.transaction() as session:
        row = session.get(Delivery, accepted.delivery)
        return accepted.delivery, row.run_id if row else None
