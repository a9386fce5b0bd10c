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

from worker import views
from worker.reports import render_csv
from worker.services import credentials
from worker.services import proposals as proposal_service
from worker.services.deliveries import start_manual_sync
from worker.store.models import Run
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
    retrying: bool = Field(
        False, description="A queued or running run whose last attempt failed (`error` says why)"
    )
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


def _run_summary(run: views.RunView) -> RunSummary:
    return RunSummary.model_validate(run.as_json())


def _proposal_model(proposal: views.ProposalView) -> ProposalView:
    return ProposalView.model_validate(proposal.as_json())


@router.get("/orgs/{slug}/runs", response_model=list[RunSummary], summary="Run history, newest first")
def list_runs(
    request: Request,
    principal: credentials.Principal = Depends(principal_for),
    limit: int = Query(20, ge=1, le=200),
) -> list[RunSummary]:
    return [_run_summary(run) for run in views.runs(request.app.state.runtime(), principal.org_id, limit)]


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
    return [_proposal_model(p) for p in views.proposals(request.app.state.runtime(), principal.org_id)]


def _actor(runtime, principal: credentials.Principal) -> str:
    """`api:token N "LABEL"`: the audit log names the token and its label."""
    from worker.services.audit import token_actor

    with runtime.db.transaction() as session:
        return token_actor(session, "api", principal.token_id)


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
    runtime = request.app.state.runtime()
    views.proposal(runtime, proposal_id, principal.org_id)  # NotFound (404) unless it is this org's
    from worker.actors import apply_proposal

    approval = proposal_service.approve_and_apply(
        runtime,
        proposal_id,
        _actor(runtime, principal),
        apply_proposal.send,
        transferred=bool(body and body.transferred),
    )
    view = _proposal_model(views.proposal(runtime, proposal_id))
    if not approval.queued:  # committed; the re-driver sends the apply when the queue is back
        return JSONResponse({**view.model_dump(), "detail": "approved, will apply"}, status_code=202)
    return view


@router.post(
    "/orgs/{slug}/proposals/{proposal_id}/reject", response_model=ProposalView, summary="Reject a proposal"
)
def reject(
    proposal_id: str, request: Request, principal: credentials.Principal = Depends(principal_for)
) -> ProposalView:
    runtime = request.app.state.runtime()
    views.proposal(runtime, proposal_id, principal.org_id)
    proposal_service.reject(runtime, proposal_id, _actor(runtime, principal))
    return _proposal_model(views.proposal(runtime, proposal_id))


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

        request_sync(
            runtime,
            principal.slug,
            f"api:token-{principal.token_id}",
            accept_drop=True,
            audit_token=("api", principal.token_id),
        )
    delivery, run_id = start_manual_sync(runtime, principal.org_id, send)
    return SyncStarted(delivery=delivery, run_id=run_id)
