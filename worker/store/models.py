"""SQLAlchemy models: the database is the source of truth for runs and proposals.

Two partial unique indexes carry the concurrency rules: at most one queued run per
organisation (duplicate triggers coalesce into it) and at most one running run (one sync per
organisation at a time, whatever the number of worker processes).
"""

# No `from __future__ import annotations` here: SQLAlchemy then reads each `Mapped[...]` as a
# type, instead of evaluating its text (that made importing this module ~40 ms slower, on every
# command and worker start).

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from worker.store.types import UtcDateTime


class Base(DeclarativeBase):
    type_annotation_map: ClassVar = {dict[str, Any]: JSON, datetime: UtcDateTime}


class Organisation(Base):
    __tablename__ = "organisations"
    __table_args__ = (Index("organisations_by_pms_account", "pms_kind", "pms_account"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    pms_kind: Mapped[str] = mapped_column(String(16))
    pms_url: Mapped[str | None] = mapped_column(Text)
    pms_path: Mapped[str | None] = mapped_column(Text)
    pms_key_encrypted: Mapped[str | None] = mapped_column(Text)
    pms_format: Mapped[str | None] = mapped_column(Text)  # --pms export: a preset name or mapping file
    pms_staff_path: Mapped[str | None] = mapped_column(Text)  # --pms export: an optional staff list
    pms_account: Mapped[str | None] = mapped_column(String(64))
    """Which PMS account it reads (services/shared_pull.account_key, a hash), as of its latest run:
    finds the organisations that share a read without decrypting every organisation's key."""
    ptdirect_kind: Mapped[str] = mapped_column(String(16))
    ptdirect_url: Mapped[str | None] = mapped_column(Text)
    ptdirect_path: Mapped[str | None] = mapped_column(Text)
    ptdirect_key_encrypted: Mapped[str | None] = mapped_column(Text)
    pseudonym_key_encrypted: Mapped[str] = mapped_column(Text)
    mode: Mapped[str] = mapped_column(String(16), default="propose")
    sharing_scope: Mapped[str] = mapped_column(String(16), default="co-treating")
    master_recipients: Mapped[str] = mapped_column(String(16), default="all-active")
    schedule: Mapped[str] = mapped_column(String(64), default="*/2 * * * *")
    # Cron (UTC) of the full reconciliation sync: everything re-read, not only what changed.
    full_sync: Mapped[str] = mapped_column(String(64), default="30 2 * * *", server_default="30 2 * * *")
    lookback_days: Mapped[int] = mapped_column(Integer, default=540)
    removal_threshold_percent: Mapped[int] = mapped_column(Integer, default=30, server_default="30")
    removal_threshold_people: Mapped[int] = mapped_column(Integer, default=2, server_default="2")
    timezone: Mapped[str] = mapped_column(String(64), default="UTC", server_default="UTC")
    physitrack_region: Mapped[str | None] = mapped_column(String(8))
    physitrack_url: Mapped[str | None] = mapped_column(Text)
    webhook_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    webhook_secret_encrypted: Mapped[str | None] = mapped_column(Text)
    webhook_min_interval_seconds: Mapped[int] = mapped_column(Integer, default=60, server_default="60")
    created_at: Mapped[datetime]
    # Set while paused: the clock and webhooks start no sync, a manual sync is refused.
    paused_at: Mapped[datetime | None]
    paused_by: Mapped[str | None] = mapped_column(String(128))
    # Clinic groups (issue 18, sharing/scope.py): the organisation's part of a shared PMS account,
    # each a comma-separated list (PMS location ids; PMS practitioner ids or emails).
    locations: Mapped[str | None] = mapped_column(Text)
    include_people: Mapped[str | None] = mapped_column(Text)
    exclude_people: Mapped[str | None] = mapped_column(Text)


class Run(Base):
    __tablename__ = "runs"
    __table_args__ = (
        Index(
            "one_queued_run_per_org",
            "org_id",
            unique=True,
            sqlite_where=text("status = 'queued'"),
            postgresql_where=text("status = 'queued'"),
        ),
        Index(
            "one_running_run_per_org",
            "org_id",
            unique=True,
            sqlite_where=text("status = 'running'"),
            postgresql_where=text("status = 'running'"),
        ),
        Index("runs_by_org_and_time", "org_id", "requested_at"),
        Index("runs_by_org_and_finish", "org_id", "finished_at"),  # the clock's notification watch
        # The latest report and the latest trusted roster, asked by every poll and webhook run
        # (only a succeeded run stores either; migration 0014 says why the condition is only that).
        Index(
            "runs_with_report",
            "org_id",
            "finished_at",
            "id",
            sqlite_where=text("report IS NOT NULL"),
            postgresql_where=text("report IS NOT NULL"),
        ),
        Index(
            "runs_with_roster",
            "org_id",
            "finished_at",
            "id",
            sqlite_where=text("roster IS NOT NULL"),
            postgresql_where=text("roster IS NOT NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    trigger: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))  # queued, running, succeeded, failed
    requested_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_token: Mapped[str | None] = mapped_column(String(32))
    lease_expires_at: Mapped[datetime | None]
    complete: Mapped[bool | None] = mapped_column(Boolean)
    error: Mapped[str | None] = mapped_column(Text)
    counts: Mapped[dict[str, Any] | None]
    report: Mapped[dict[str, Any] | None]
    accept_drop: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    """The admin confirmed that practitioners missing from the PMS since the baseline left."""
    # None is stored as SQL NULL, not as a JSON null: `roster IS NOT NULL` must not take a run
    # without a roster for one (the queries that read them also ask for a complete run: rows
    # written before this stored JSON nulls).
    roster: Mapped[list[str] | None] = mapped_column(JSON(none_as_null=True))
    """Active PMS practitioner ids of a complete, trusted run: the next runs' baseline."""
    plan: Mapped[list[list[str]] | None] = mapped_column(JSON(none_as_null=True))
    """(op, email) of every operation a complete run planned: what 'the current plan' calls for."""
    policy: Mapped[dict[str, Any] | None]
    """The policy the run reconciled under (a policy change is not a clinic change)."""
    enqueued_at: Mapped[datetime | None]
    """When its message was last sent; the re-driver re-sends a run nobody took after a while."""
    full_pull: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    """Re-read everything from the PMS (the full sync), ignoring the incremental cursors."""
    read_after: Mapped[datetime | None]
    """When the newest request that joined this queued run came: its reads start after it."""
    report_required: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    """A request it serves needs a report even if nothing changed (a person's sync, a re-plan)."""

    organisation: Mapped[Organisation] = relationship()


class FindingRecord(Base):
    __tablename__ = "findings"
    __table_args__ = (Index("findings_by_run", "run_id"), Index("findings_by_org", "org_id", "fingerprint"))

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    fingerprint: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(40))
    severity: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    document: Mapped[dict[str, Any]]


class Proposal(Base):
    __tablename__ = "proposals"
    __table_args__ = (Index("proposals_by_org", "org_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    # proposed, approved, applying, applied, applied_by_hand, reopened, rejected, superseded, failed
    status: Mapped[str] = mapped_column(String(16))
    state_digest: Mapped[str] = mapped_column(String(64))
    planned_state: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    decided_at: Mapped[datetime | None]
    decided_by: Mapped[str | None] = mapped_column(String(128))
    applied_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    verified_at: Mapped[datetime | None]
    apply_token: Mapped[str | None] = mapped_column(String(32))
    apply_lease_expires_at: Mapped[datetime | None]
    policy_digest: Mapped[str | None] = mapped_column(String(64))
    confirmed_at: Mapped[datetime | None]
    """When a complete run last planned exactly this proposal (created or re-confirmed it)."""
    superseded_by: Mapped[str | None] = mapped_column(String(32))
    apply_requested_at: Mapped[datetime | None]
    """When an apply message was last sent for it (approval, automatic apply or re-driver)."""

    operations: Mapped[list["ProposalOperation"]] = relationship(
        order_by="ProposalOperation.position", cascade="all, delete-orphan"
    )
    organisation: Mapped[Organisation] = relationship()


class ProposalOperation(Base):
    __tablename__ = "proposal_operations"

    id: Mapped[int] = mapped_column(primary_key=True)
    proposal_id: Mapped[str] = mapped_column(ForeignKey("proposals.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    op: Mapped[str] = mapped_column(String(40))
    email: Mapped[str] = mapped_column(String(320))
    requires_approval: Mapped[bool] = mapped_column(Boolean)
    # pending, applying, applied, manual (a person must do it), waiting (for a transfer or a
    # confirming sync), failed, closed (no longer called for: never sent)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    document: Mapped[dict[str, Any]]
    applied_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    approved_at: Mapped[datetime | None]
    approved_by: Mapped[str | None] = mapped_column(String(128))
    note: Mapped[str | None] = mapped_column(Text)
    """Why the operation waits, was skipped or was closed, in words for the admin."""


class PhysitrackKey(Base):
    """A practitioner's Physitrack API v2 key (encrypted), for pulling their client list."""

    __tablename__ = "physitrack_keys"

    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), primary_key=True)
    practitioner_email: Mapped[str] = mapped_column(String(320), primary_key=True)
    key_encrypted: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime]


class PmsState(Base):
    """What an incremental connector read in earlier runs (zlib-compressed JSON).

    Written in the same transaction as the cursors, only when a run completes, so the cursors
    never point past rows the state does not hold.
    """

    __tablename__ = "pms_state"

    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime]


class Delivery(Base):
    """The inbox/outbox: a webhook or schedule tick, committed before it is acknowledged.

    The unique key (organisation, source, delivery id) makes a repeated delivery a no-op and
    a duplicate schedule tick impossible; the relay turns pending rows into sync requests.
    """

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("org_id", "source", "delivery_id", name="one_row_per_delivery"),
        Index("deliveries_by_status", "status", "received_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    source: Mapped[str] = mapped_column(String(16))  # physitrack, fhir, generic, schedule
    delivery_id: Mapped[str] = mapped_column(String(200))
    event: Mapped[str] = mapped_column(String(64))
    body_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))  # pending, relayed, skipped (organisation paused)
    received_at: Mapped[datetime]
    relayed_at: Mapped[datetime | None]
    run_id: Mapped[str | None] = mapped_column(String(32))


class AdminToken(Base):
    """An organisation's admin token, stored as a SHA-256 hash (the token is shown once)."""

    __tablename__ = "admin_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class AdminSession(Base):
    """A logged-in browser: the cookie is a random id, stored here only as its SHA-256 hash.

    Logging out sets `ended_at`, so a copied cookie is refused afterwards; revoking the token
    ends its sessions too.
    """

    __tablename__ = "admin_sessions"
    __table_args__ = (Index("admin_sessions_by_token", "token_id"),)

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    token_id: Mapped[int] = mapped_column(ForeignKey("admin_tokens.id", ondelete="CASCADE"))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]


class SyncCursor(Base):
    __tablename__ = "sync_cursors"

    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), primary_key=True)
    resource: Mapped[str] = mapped_column(String(64), primary_key=True)
    cursor: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime]


class AuditEntry(Base):
    __tablename__ = "audit_log"
    __table_args__ = (Index("audit_by_org", "org_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]]


class NotificationChannel(Base):
    """Where an organisation's notifications go: an apprise URL, an email address or a webhook.

    The target (it may hold a token or password) and the webhook signing secret are stored
    encrypted; `display` is the redacted form shown in lists.
    """

    __tablename__ = "notification_channels"
    __table_args__ = (Index("channels_by_org", "org_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))  # apprise, email, webhook
    target_encrypted: Mapped[str] = mapped_column(Text)
    display: Mapped[str] = mapped_column(String(300))
    events: Mapped[list[str]] = mapped_column(JSON)
    min_severity: Mapped[str] = mapped_column(String(16), default="medium")
    digest: Mapped[str] = mapped_column(String(16), default="none")  # none, daily
    secret_encrypted: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(128))
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_attempt_at: Mapped[datetime | None]
    last_success_at: Mapped[datetime | None]


class NotificationMessage(Base):
    """The notification outbox: written in the transaction that decided to notify.

    A row is sent by an actor after commit and retried with backoff until it is sent or gives
    up, so a message goes out at least once, and never for a transaction that rolled back. The
    unique key (channel, dedupe key) keeps an ongoing condition from being announced twice.
    """

    __tablename__ = "notification_outbox"
    __table_args__ = (
        UniqueConstraint("channel_id", "dedupe_key", name="one_message_per_key"),
        Index("outbox_by_status", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    channel_id: Mapped[int] = mapped_column(ForeignKey("notification_channels.id", ondelete="CASCADE"))
    event: Mapped[str] = mapped_column(String(32))
    dedupe_key: Mapped[str] = mapped_column(String(200))
    run_id: Mapped[str | None] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(16))  # pending, held (digest), sent, failed, digested
    created_at: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)


class NotifiedFinding(Base):
    """A finding already announced on a channel: it is not announced again while it lasts."""

    __tablename__ = "notified_findings"

    channel_id: Mapped[int] = mapped_column(
        ForeignKey("notification_channels.id", ondelete="CASCADE"), primary_key=True
    )
    fingerprint: Mapped[str] = mapped_column(String(40), primary_key=True)
    notified_at: Mapped[datetime]


class PtDirectState(Base):
    """One recorded version of an organisation's PT Direct state (`--ptdirect manual`).

    PT Direct has no admin API, so a person records what its screens show; every version keeps
    who recorded it, when, from where, and what changed since the previous one. The newest
    version is what a sync plans from.
    """

    __tablename__ = "ptdirect_states"
    __table_args__ = (UniqueConstraint("org_id", "version", name="one_row_per_state_version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    recorded_at: Mapped[datetime]
    recorded_by: Mapped[str] = mapped_column(String(128))
    source: Mapped[str] = mapped_column(String(32))  # page, import, edit, checklist
    note: Mapped[str | None] = mapped_column(Text)
    document: Mapped[dict[str, Any]]
    changes: Mapped[dict[str, Any]]


class SharedPull(Base):
    """The latest PMS read of one PMS account (connection), shared by the organisations on it.

    Several organisations on one PMS key (a clinic group) read the account once per sync round:
    a run uses a read that started after the run was requested, else reads and stores its own.
    Encrypted like `pms_state`; kept for `SHARED_PULL_MINUTES` and deleted with the organisation
    whose run read it.
    """

    __tablename__ = "shared_pulls"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    started_at: Mapped[datetime]
    window_start: Mapped[str] = mapped_column(String(10))
    expires_at: Mapped[datetime]
    data: Mapped[bytes] = mapped_column(LargeBinary)
