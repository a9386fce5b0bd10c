"""The admin API: per-organisation bearer tokens; another organisation's data is a 404.

Reports are the `ptsync.report/1` contract (or CSV); approving sends the apply to the queue;
starting a sync goes through the same outbox as webhooks.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from worker.clock import iso
from worker.reports import render_csv
from worker.services import credentials
from worker.services import proposals as proposal_service
from worker.services.deliveries import start_manual_sync
from worker.store import repositories as repo
from worker.store.models import Proposal, Run
from worker.web.throttle import record_failure, refuse_if_throttled

router = APIRouter(prefix="/api/v1", tags=["admin"])
bearer = HTTPBearer(auto_error=False, description="An organisation admin token (ptsync org token SLUG)")


class RunSummary(BaseModel):
    id: str
    trigger: str
    status: str
    requested_at: str | None
    started_at: str | None
    finished_at: str | None
    error: str | None
    counts: dict[str, Any] | None


class OperationView(BaseModel):
    position: int
    op: str
    email: str
    requires_approval: bool
    status: str


class ProposalView(BaseModel):
    id: str
    run_id: str
    status: str
    created_at: str | None
    decided_by: str | None
    decided_at: str | None
    error: str | None
    operations: list[OperationView]


class ApproveRequest(BaseModel):
    transferred: bool = Field(
        False, description="Confirm that departed practitioners' patients were transferred"
    )


class SyncRequest(BaseModel):
    accept_drop: bool = Field(
        False,
        description="Confirm that practitioners missing from the PMS since the last sync really left "
        "(see the suspicious_pms_drop finding)",
    )


class SyncStarted(BaseModel):
    delivery: int
    run_id: str | None


def principal_for(
    slug: str, request: Request, token: HTTPAuthorizationCredentials | None = Depends(bearer)
) -> credentials.Principal:
    refuse_if_throttled(request)
    if token is None:
        raise HTTPException(
            401,
            "an admin token is required (Authorization: Bearer ...)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    principal = credentials.authenticate(request.app.state.runtime(), token.credentials)
    if principal is None:
        record_failure(request, "an API token", slug)
        raise HTTPException(
            401, "unknown, expired or revoked admin token", headers={"WWW-Authenticate": "Bearer"}
        )
    if principal.slug != slug:
        raise HTTPException(404, "not found")  # never confirm that another organisation exists
    return principal


def _run_summary(run: Run) -> RunSummary:
    counts = dict(run.counts or {})
    counts.pop("picture", None)
    return RunSummary(
        id=run.id,
        trigger=run.trigger,
        status=run.status,
        requested_at=iso(run.requested_at),
        started_at=iso(run.started_at),
        finished_at=iso(run.finished_at),
        error=run.error,
        counts=counts,
    )


def proposal_view(proposal: Proposal) -> ProposalView:
    return ProposalView(
        id=proposal.id,
        run_id=proposal.run_id,
        status=proposal.status,
        created_at=iso(proposal.created_at),
        decided_by=proposal.decided_by,
        decided_at=iso(proposal.decided_at),
        error=proposal.error,
        operations=[
            OperationView(
                position=op.position,
                op=op.op,
                email=op.email,
                requires_approval=op.requires_approval,
                status=op.status,
            )
            for op in proposal.operations
        ],
    )


@router.get("/orgs/{slug}/runs", response_model=list[RunSummary], summary="Run history, newest first")
def list_runs(
    request: Request,
    principal: credentials.Principal = Depends(principal_for),
    limit: int = Query(20, ge=1, le=200),
) -> list[RunSummary]:
    with request.app.state.runtime().db.transaction() as session:
        return [_run_summary(run) for run in repo.runs_of(session, principal.org_id, limit)]


@router.get(
    "/orgs/{slug}/runs/{run_id}/report",
    summary="A run's report (ptsync.report/1 JSON, or CSV)",
    responses={200: {"content": {"application/json": {}, "text/csv": {}}}},
)
def run_report(
    run_id: str,
    request: Request,
    principal: credentials.Principal = Depends(principal_for),
    format: Literal["json", "csv"] = Query("json"),
) -> Any:
    with request.app.state.runtime().db.transaction() as session:
        run = session.get(Run, run_id)
        if run is None or run.org_id != principal.org_id or run.report is None:
            raise HTTPException(404, "no report for that run")
        report = run.report
    if format == "csv":
        return PlainTextResponse(render_csv(report), media_type="text/csv")
    return report


@router.get(
    "/orgs/{slug}/report",
    summary="The latest report (ptsync.report/1 JSON, or CSV)",
    responses={200: {"content": {"application/json": {}, "text/csv": {}}}},
)
def latest(
    request: Request,
    principal: credentials.Principal = Depends(principal_for),
    format: Literal["json", "csv"] = Query("json"),
) -> Any:
    from worker.reports import latest_report

    report, _ = latest_report(request.app.state.runtime(), principal.slug)
    if format == "csv":
        return PlainTextResponse(render_csv(report), media_type="text/csv")
    return report


@router.get("/orgs/{slug}/proposals", response_model=list[ProposalView], summary="Proposals, newest first")
def list_proposals(
    request: Request, principal: credentials.Principal = Depends(principal_for)
) -> list[ProposalView]:
    with request.app.state.runtime().db.transaction() as session:
        return [proposal_view(p) for p in repo.proposals_of(session, principal.org_id)]


def _actor(runtime, principal: credentials.Principal) -> str:
    """`api:token N "LABEL"`: the audit log names the token and its label."""
    from worker.services.audit import token_actor

    with runtime.db.transaction() as session:
        return token_actor(session, "api", principal.token_id)


def _own_proposal(request: Request, principal: credentials.Principal, proposal_id: str) -> None:
    with request.app.state.runtime().db.transaction() as session:
        proposal = session.get(Proposal, proposal_id)
        if proposal is None or proposal.org_id != principal.org_id:
            raise HTTPException(404, "not found")


@router.post(
    "/orgs/{slug}/proposals/{proposal_id}/approve",
    response_model=ProposalView,
    summary="Approve a proposal and queue its apply",
    responses={202: {"description": "Approved; the queue is unreachable, the apply is sent when it is back"}},
)
def approve(
    proposal_id: str,
    request: Request,
    body: ApproveRequest | None = None,
    principal: credentials.Principal = Depends(principal_for),
) -> Any:
    _own_proposal(request, principal, proposal_id)
    runtime = request.app.state.runtime()
    from worker.actors import apply_proposal

    approval = proposal_service.approve_and_apply(
        runtime,
        proposal_id,
        _actor(runtime, principal),
        apply_proposal.send,
        transferred=bool(body and body.transferred),
    )
    with runtime.db.transaction() as session:
        view = proposal_view(repo.get_proposal(session, proposal_id))
    if not approval.queued:  # committed; the re-driver sends the apply when the queue is back
        return JSONResponse({**view.model_dump(), "detail": "approved, will apply"}, status_code=202)
    return view


@router.post(
    "/orgs/{slug}/proposals/{proposal_id}/reject", response_model=ProposalView, summary="Reject a proposal"
)
def reject(
    proposal_id: str, request: Request, principal: credentials.Principal = Depends(principal_for)
) -> ProposalView:
    _own_proposal(request, principal, proposal_id)
    runtime = request.app.state.runtime()
    proposal_service.reject(runtime, proposal_id, _actor(runtime, principal))
    with runtime.db.transaction() as session:
        return proposal_view(repo.get_proposal(session, proposal_id))


@router.post("/orgs/{slug}/syncs", response_model=SyncStarted, status_code=202, summary="Start a sync")
def start_sync(
    request: Request,
    body: SyncRequest | None = None,
    principal: credentials.Principal = Depends(principal_for),
) -> SyncStarted:
    runtime, send = request.app.state.runtime(), request.app.state.send
    if body is not None and body.accept_drop:
        # Queue the run with the confirmation now; the relay below joins this queued run.
        from worker.services.sync import request_sync

        request_sync(runtime, principal.slug, f"api:token-{principal.token_id}", accept_drop=True)
    delivery, run_id = start_manual_sync(runtime, principal.org_id, send)
    return SyncStarted(delivery=delivery, run_id=run_id)
