"""The PT Direct page (`/orgs/SLUG/ptdirect`) and the checklist's "Mark applied" form.

The page mirrors PT Direct's own admin screens (Users; Practitioner sharing with its Share
content / Share patients tick boxes; Master account and its recipients), one row per person,
pre-filled with the PMS practitioners, so an admin ticks what PT Direct shows them. Saving
validates and records a new version (`--ptdirect manual`). Plain forms: no JavaScript needed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import RedirectResponse, Response

from connectors.errors import ConnectorError
from sharing.identity import normalise_email
from worker.errors import InvalidInput, NotFound
from worker.services import proposals as proposal_service
from worker.services import ptdirect_state
from worker.store import repositories as repo
from worker.web.pages import _check_form, _notice, _own, _render, _session, page_actor, redirect_with_notice

router = APIRouter(tags=["pages"], include_in_schema=False)
BLANK_ROWS = 2
MAX_ROWS = 5000
FIELDS_PER_ROW = 11
"""`rN_email`, `_name`, `_status`, `_access`, `_link_system`, `_link_id`, `_content`,
`_patients`, `_recipient`, `_from_pms`, `_fixed` (ptdirect.html)."""
MAX_FIELDS = MAX_ROWS * FIELDS_PER_ROW + 16
"""The form's field limit: Starlette's default (1,000) refused the page of any clinic with more
than about 90 people ("400 Too many fields"). A checklist has two fields a step."""


@dataclass
class Person:
    """One row of the page: a person as PT Direct's three screens show them."""

    email: str = ""
    name: str = ""
    status: str = "none"  # none (no PT Direct user), confirmed, unconfirmed
    access: bool = True
    pms_link: dict[str, str] | None = None
    share_content: bool = False
    share_patients: bool = False
    recipient: bool = False
    from_pms: bool = False
    fixed: bool = False  # the email is known (recorded or from the PMS), not typed on the page
    errors: list[str] = field(default_factory=list)


def _people(runtime, slug: str) -> tuple[list[Person], str | None, str | None]:
    """Recorded users, sharing members and recipients, plus every PMS practitioner with an email."""
    current = ptdirect_state.latest(runtime, slug)
    people: dict[str, Person] = {}
    master_email = None
    if current is not None:
        snapshot = current.snapshot
        for user in snapshot.users:
            people[normalise_email(user.email)] = Person(
                user.email,
                user.name,
                user.status.value,
                user.practitioner_access,
                None
                if user.pms_link is None
                else {"system": user.pms_link.system, "practitioner_id": user.pms_link.practitioner_id},
                fixed=True,
            )
        for member in snapshot.sharing_members:
            person = people.setdefault(
                normalise_email(member.email), Person(member.email, member.email, fixed=True)
            )
            person.share_content, person.share_patients = member.share_content, member.share_patients
        if snapshot.master_account is not None:
            master_email = snapshot.master_account.email
            for email in snapshot.master_account.recipients:
                people.setdefault(normalise_email(email), Person(email, email, fixed=True)).recipient = True
    pms, problem = ptdirect_state.pms_practitioners(runtime, slug)
    for practitioner in pms:
        if not practitioner.email:
            continue
        person = people.setdefault(
            normalise_email(practitioner.email), Person(practitioner.email, practitioner.name, fixed=True)
        )
        person.from_pms = True
        if person.name == person.email:
            person.name = practitioner.name
    rows = sorted(people.values(), key=lambda p: (p.status == "none", p.name.lower()))
    return rows, master_email, problem


def _from_form(form: Any) -> tuple[list[Person], str]:
    """The rows as submitted (a row is `rN_*`; unticked boxes are simply absent)."""
    rows = []
    rows_field = str(form.get("rows", "0") or "0").strip()
    if not (rows_field.isascii() and rows_field.isdigit()):  # "²" is a digit int() refuses
        raise HTTPException(400, "the form's row count is not a number")
    count = min(int(rows_field), MAX_ROWS)
    for index in range(count):
        key = f"r{index}_"
        email = (form.get(key + "email") or "").strip()
        if not email:
            continue
        link = None
        if form.get(key + "link_system") and form.get(key + "link_id"):
            link = {"system": form.get(key + "link_system"), "practitioner_id": form.get(key + "link_id")}
        rows.append(
            Person(
                email=email,
                name=(form.get(key + "name") or "").strip() or email,
                status=form.get(key + "status") or "none",
                access=form.get(key + "access") == "on",
                pms_link=link,
                share_content=form.get(key + "content") == "on",
                share_patients=form.get(key + "patients") == "on",
                recipient=form.get(key + "recipient") == "on",
                from_pms=form.get(key + "from_pms") == "1",
                fixed=form.get(key + "fixed") == "1",
            )
        )
    return rows, (form.get("master_email") or "").strip()


def _document(rows: list[Person], master_email: str) -> tuple[dict[str, Any], list[str]]:
    """A `ptsync.ptdirect/1` document from the rows, and what is wrong with them (by person)."""
    errors = []
    seen: set[str] = set()
    for person in rows:
        if "@" not in person.email:
            errors.append(f"{person.email}: not an email address")
        if normalise_email(person.email) in seen:
            errors.append(f"{person.email}: listed twice")
        seen.add(normalise_email(person.email))
        if person.status not in ("none", "confirmed", "unconfirmed"):
            errors.append(f"{person.email}: unknown PT Direct status {person.status!r}")
        if person.status == "none" and (person.share_content or person.share_patients):
            errors.append(f"{person.email} is ticked in Practitioner sharing but has no PT Direct user")
        if person.status == "none" and person.recipient:
            errors.append(f"{person.email} is ticked as a master account recipient but has no PT Direct user")
    if not master_email and any(person.recipient for person in rows):
        errors.append("master account recipients are ticked, but the master account email is empty")
    if master_email and "@" not in master_email:
        errors.append(f"master account {master_email}: not an email address")
    users = [p for p in rows if p.status != "none"]
    document = {
        "schema": "ptsync.ptdirect/1",
        "users": [
            {
                "email": p.email,
                "name": p.name,
                "status": p.status,
                "practitioner_access": p.access,
                "pms_link": p.pms_link,
            }
            for p in users
        ],
        "master_account": {"email": master_email, "recipients": [p.email for p in users if p.recipient]}
        if master_email
        else None,
        "practitioner_sharing": {
            "members": [
                {"email": p.email, "share_content": p.share_content, "share_patients": p.share_patients}
                for p in users
                if p.share_content or p.share_patients
            ]
        },
    }
    return document, errors


def _page(
    request: Request, slug: str, cookie: str, rows, master_email, *, notice=None, errors=(), problem=None
) -> Response:
    from worker.web.pages import _csrf

    runtime = request.app.state.runtime()
    with runtime.db.transaction() as session:
        kind = repo.get_org(session, slug).ptdirect_kind
    versions = ptdirect_state.history(runtime, slug, 5)
    padded = [*rows, *(Person() for _ in range(BLANK_ROWS))]
    return _render(
        "ptdirect.html",
        slug=slug,
        kind=kind,
        rows=padded,
        master_email=master_email or "",
        versions=versions,
        notice=notice,
        errors=list(errors),
        problem=problem,
        csrf=_csrf(request, cookie),
    )


@router.get("/orgs/{slug}/ptdirect")
def ptdirect_page(
    slug: str, request: Request, notice: str | None = None, n: str | None = None, k: str | None = None
) -> Response:
    session_info = _session(request, slug)
    if session_info is None:
        return RedirectResponse(f"/orgs/{slug}/login", status_code=303)
    runtime = request.app.state.runtime()
    rows, master_email, problem = _people(runtime, slug)
    notice = _notice(request, notice, n, k)
    return _page(request, slug, session_info[1], rows, master_email, notice=notice, problem=problem)


@router.post("/orgs/{slug}/ptdirect")
async def save_ptdirect(slug: str, request: Request) -> Response:
    form = await request.form(max_fields=MAX_FIELDS)
    _check_form(request, slug, str(form.get("csrf", "")))
    cookie = _session(request, slug)[1]
    rows, master_email = _from_form(form)
    document, errors = _document(rows, master_email)
    runtime = request.app.state.runtime()
    if not errors:
        try:
            recorded = ptdirect_state.record(
                runtime, slug, document, page_actor(request, slug), "page", "the PT Direct page"
            )
        except (ConnectorError, InvalidInput) as exc:
            errors = [str(exc)]
        else:
            if recorded is None:
                notice = "Nothing changed: the recorded state already says this."
            else:
                notice = f"Recorded version {recorded.version}: " + "; ".join(recorded.changes)
            return _back(request, f"/orgs/{slug}/ptdirect", notice)
    return _page(request, slug, cookie, rows, master_email, errors=errors)


@router.post("/orgs/{slug}/proposals/{proposal_id}/steps")
async def record_steps(slug: str, proposal_id: str, request: Request) -> Response:
    """The checklist's "Mark applied": steps ticked done, or marked as not possible (with why)."""
    form = await request.form(max_fields=MAX_FIELDS)
    org_id = _check_form(request, slug, str(form.get("csrf", "")))
    _own(request, org_id, proposal_id)
    done, could_not = set(), {}
    for name, value in form.multi_items():
        if not name.startswith("step-") or not name[5:].isdigit():
            continue
        position = int(name[5:])
        if value == "done":
            done.add(position)
        elif value == "could_not":
            could_not[position] = str(form.get(f"reason-{position}", "")).strip()
    target = f"/orgs/{slug}/proposals/{proposal_id}/checklist"
    if not done and not could_not:
        return _back(request, target, "Tick at least one step as done or not possible.", problem=True)
    try:
        proposal = proposal_service.record_steps(
            request.app.state.runtime(),
            proposal_id,
            page_actor(request, slug),
            done=done,
            could_not=could_not,
        )
    except (InvalidInput, NotFound) as exc:
        return _back(request, target, str(exc), problem=True)
    notice = f"Recorded {len(done)} step(s) as done"
    if could_not:
        notice += f" and {len(could_not)} as not possible"
    if proposal.status == "applied_by_hand":
        notice += ". Every step is recorded; the next sync checks the result."
    return _back(request, target, notice)


def _back(request: Request, target: str, notice: str, *, problem: bool = False) -> Response:
    return redirect_with_notice(request, target, notice[:600], problem=problem)
