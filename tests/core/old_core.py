"""A differential harness: the core as it was at a reference commit, and random clinics to feed
both it and the current core.

The reconcile's speed-ups (columns instead of pair objects, lazy views, hand-written
`__init__`s, two threads at a million rows) promise the same findings, operations, pairs and
report bytes for any input. `load_old_core` extracts `sharing/` at the reference commit from
this repository's own history (`git archive`) into a temporary package with another name, so
both cores import side by side; `random_clinic` draws a clinic as plain data (`Spec`) that
`build_inputs` turns into either core's inputs, and `outputs` reduces a run to comparable text.
"""

from __future__ import annotations

import dataclasses
import importlib
import io
import random
import re
import subprocess
import sys
import tarfile
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

REFERENCE_COMMIT = "5a8df3f"
"""The core that is the specification. When a change to the core's output is intended, move this
to a commit that has it (and say in that commit how the differences were checked).

History: 9ee2b25, the last commit before the fast-reconcile work, until dc1a6b4 (clinic groups:
a move needs the PMS to place someone at another site; a read with nobody active is a suspicious
drop), whose differences from it over 4,200 random clinics were all of those kinds; then
cf25ae7 (a member the scope leaves outside without saying why is an ambiguous_match; a move
under a new PMS record departs; an exclude entry protects all of a person's records), then
5a8df3f (a member linked to an old record, active under a new unplaced one, is held)."""

REPO = Path(__file__).resolve().parents[2]
AS_OF = date(2026, 11, 25)
KEY = b"differential-key"


def load_old_core(target: Path, commit: str = REFERENCE_COMMIT) -> ModuleType | None:
    """The `sharing` package at `commit`, imported as `oldsharing_<commit>`; None when this is
    not a git checkout that has the commit (an exported tree, a shallow clone)."""
    name = f"oldsharing_{commit}"
    if name in sys.modules:
        return sys.modules[name]
    try:
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", "--format=tar", commit, "sharing"],
            check=True,
            capture_output=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    package = target / name
    package.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        for member in tar.getmembers():
            if not member.isfile() or not member.name.endswith(".py"):
                continue
            source = tar.extractfile(member).read().decode("utf-8")  # type: ignore[union-attr]
            source = re.sub(r"\bfrom sharing\b", f"from {name}", source)
            source = re.sub(r"\bimport sharing\b", f"import {name}", source)
            (package / Path(member.name).name).write_text(source)
    sys.path.insert(0, str(target))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(target))


# --- clinics as plain data -------------------------------------------------------------------


@dataclass
class Spec:
    """A clinic and a run, as plain values: either core's objects are built from it."""

    system: str = "cliniko"
    practitioners: list[tuple] = field(default_factory=list)
    """(id, name, email, active, locations)"""
    outside: list[tuple] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)
    rows: list[tuple] = field(default_factory=list)
    """(practitioner id, patient id, source, days ago, status, location)"""
    log_style: str = "rows"
    """rows: AccessLog.from_rows; columns: the constructor, with codes handed out shuffled and
    ids no row uses."""
    log_seed: int = 0
    groups: list[tuple] = field(default_factory=list)
    """(id, name, practitioner ids)"""
    locations: list[tuple] | None = None
    pms_complete: bool = True
    users: list[tuple] = field(default_factory=list)
    """(email, name, confirmed, practitioner_access, link system or None, link id)"""
    members: list[tuple] = field(default_factory=list)
    master: tuple | None = None
    """(email, recipients)"""
    clients: list[tuple] | None = None
    ptdirect_complete: bool = True
    policy: dict[str, Any] = field(default_factory=dict)
    baseline: tuple | None = None
    """(active ids, accept_drop)"""
    scope: tuple | None = None
    """(locations, include, exclude) for `sharing.scope.apply_scope`, None for the whole account."""
    as_of: date = AS_OF
    previous_share: float = 0.0
    """Share of the findings the previous report is made to have had (the rest are new)."""
    stale_previous: int = 0
    """Previous findings no longer seen (resolved, or carried when incomplete)."""
    policy_only_share: float = 0.0


_FIRST = ["Ana", "Anna", "Ann", "Bo", "Chris", "Christine", "Dee", "Émile", "Emile", "Jo", "Jon", "John"]
_LAST = ["Silva", "Silvia", "Smith", "Smyth", "Ng", "O'Neil", "Oneil", "Park", "Parke", "Lee", "Li"]


def _practitioner_ids(rng: random.Random, count: int) -> list[str]:
    style = rng.choice(["small", "huge", "mixed", "text"])
    ids: list[str] = []
    seen: set[str] = set()
    while len(ids) < count:
        if style == "small":
            pid = str(rng.randint(1, max(10, count * 3)))  # "9" sorts after "10": string order
        elif style == "huge":
            pid = str(10**21 + rng.randint(0, 10**9) * 7919)
        elif style == "mixed":
            pid = rng.choice(
                [str(rng.randint(1, 999)), str(10**18 + rng.randint(0, 10**6)), f"P-{rng.randint(1, 99)}"]
            )
        else:
            pid = rng.choice(["prac", "Prac", "PRAC", "p"]) + "-" + str(rng.randint(0, count * 4))
        if pid not in seen:
            seen.add(pid)
            ids.append(pid)
    return ids


def _email_variant(rng: random.Random, email: str) -> str:
    choice = rng.random()
    if choice < 0.15:
        return email.upper()
    if choice < 0.25:
        return f"  {email.title()} "
    return email


def random_clinic(rng: random.Random, size: int) -> Spec:
    """A clinic of `size` PMS practitioners with everything the rules look at varied."""
    spec = Spec(system=rng.choice(["cliniko", "cliniko", "Cliniko ", "nookal"]))
    spec.as_of = AS_OF + timedelta(days=rng.choice([0, 0, 1, -400, 3000]))
    ids = _practitioner_ids(rng, size + 6)
    outside_ids = ids[size : size + rng.randint(0, 3)]
    unknown_ids = ids[size + 3 :]  # in the access log or groups only
    ids = ids[:size]
    location_ids = [f"loc-{index}" for index in range(rng.randint(0, 3))]
    if location_ids and rng.random() < 0.7:
        spec.locations = [(lid, f"Site {lid}", rng.random() < 0.1) for lid in location_ids]
    all_inactive = rng.random() < 0.05
    emails: list[str | None] = []
    for index, pid in enumerate(ids):
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        name = f"{first} {last}" if rng.random() < 0.9 else f"{last} {first}"
        roll = rng.random()
        if roll < 0.08:
            email = None
        elif roll < 0.14 and emails:
            email = rng.choice([e for e in emails if e] or [f"shared{index}@clinic.example"])
        else:
            email = f"{first.lower()}.{last.lower()}{index}@clinic.example"
        emails.append(email)
        active = not all_inactive and rng.random() < 0.85
        locations = tuple(rng.sample(location_ids, rng.randint(0, len(location_ids)))) if location_ids else ()
        spec.practitioners.append(
            (pid, name, _email_variant(rng, email) if email else email, active, locations)
        )
    if spec.practitioners and rng.random() < 0.05:  # the same record twice
        spec.practitioners.append(rng.choice(spec.practitioners))
    for index, pid in enumerate(outside_ids):
        spec.outside.append(
            (pid, f"Outside {index}", f"outside{index}@clinic.example", rng.random() < 0.8, ())
        )
        if rng.random() < 0.3:
            spec.excluded.append(pid)

    # PT Direct users: linked, by email, by name only, none; stale links and other systems.
    link_system = spec.system.strip().lower()
    for index, (pid, name, email, _active, _locs) in enumerate(spec.practitioners[:size]):
        roll = rng.random()
        confirmed = rng.random() < 0.85
        access = rng.random() < 0.9
        if roll < 0.45:
            user_email = (email or f"linked{index}@clinic.example").strip().lower()
            spec.users.append((_email_variant(rng, user_email), name, confirmed, access, link_system, pid))
        elif roll < 0.75 and email:
            spec.users.append(
                (_email_variant(rng, email.strip().lower()), name, confirmed, access, None, None)
            )
        elif roll < 0.82:
            alias = name if rng.random() < 0.5 else name.replace("a", "e", 1)
            spec.users.append((f"alias{index}@elsewhere.example", alias, confirmed, access, None, None))
        elif roll < 0.85:
            spec.users.append((f"other{index}@clinic.example", name, confirmed, access, "semble", pid))
    for index, pid in enumerate(outside_ids):
        if rng.random() < 0.7:
            spec.users.append(
                (f"outside{index}@clinic.example", f"Outside {index}", True, True, link_system, pid)
            )
    for index in range(rng.randint(0, 3)):  # leavers: linked to practitioners the PMS no longer has
        spec.users.append(
            (
                f"gone{index}@clinic.example",
                f"Gone {index}",
                rng.random() < 0.9,
                True,
                link_system,
                f"gone-{index}",
            )
        )
    if rng.random() < 0.6:
        spec.users.append(("content@clinic.example", "Clinic Content", True, rng.random() < 0.5, None, None))
    user_emails = [user[0] for user in spec.users]
    for email in user_emails:
        if rng.random() < 0.55:
            spec.members.append(
                (_email_variant(rng, email.strip().lower()), rng.random() < 0.9, rng.random() < 0.7)
            )
    if rng.random() < 0.1:
        spec.members.append(("nobody@clinic.example", True, True))
    master_roll = rng.random()
    if master_roll < 0.5 and "content@clinic.example" in user_emails:
        master_email = "content@clinic.example"
    elif master_roll < 0.7 and user_emails:
        master_email = rng.choice(user_emails)
    else:
        master_email = None
    if master_email is not None:
        recipients = [_email_variant(rng, e.strip().lower()) for e in user_emails if rng.random() < 0.6]
        if rng.random() < 0.2:
            recipients.append("stranger@clinic.example")
        spec.master = (master_email, recipients)
    if rng.random() < 0.3 and user_emails:
        spec.clients = []
        for index in range(rng.randint(0, 12)):
            holder = rng.choice(user_emails)
            external = rng.choice([None, "", " ", f"ext-{rng.randint(0, 4)}"])
            spec.clients.append(
                (
                    _email_variant(rng, holder.strip().lower()),
                    f"c{index}",
                    external,
                    rng.choice([None, "Pat Doe", "pat doe", "Sam Roe"]),
                    rng.choice([None, 1980, 1991]),
                    rng.choice([None, "pat@example.com", "PAT@example.com"]),
                )
            )

    # Access rows: patients seen by a few practitioners of a "team", some unknown, some outside.
    row_ids = ids + outside_ids + (unknown_ids if rng.random() < 0.3 else [])
    if rng.random() < 0.05:
        row_ids = []
    teams = max(1, len(row_ids) // rng.randint(3, 12)) if row_ids else 0
    patients = 0 if not row_ids else rng.randint(0, max(1, size * rng.choice([1, 3, 10])))
    for patient in range(patients):
        patient_id = rng.choice([f"pat-{patient}", str(patient), f"{10**20 + patient}"])
        team = rng.randrange(teams)
        for _ in range(rng.choice([1, 1, 2, 2, 3, 4, 7])):
            if rng.random() < 0.9:
                pid = row_ids[(team * 5 + rng.randint(0, 6)) % len(row_ids)]
            else:
                pid = rng.choice(row_ids)
            for _visit in range(rng.choice([1, 1, 2, 3])):
                days_ago = rng.choice(
                    [rng.randint(-60, 900), rng.randint(0, 100), 0, -1, 89, 90, 91, 539, 540, 541]
                )
                status = rng.choices([0, 1, 2, 3], [0.85, 0.07, 0.05, 0.03])[0]
                source = rng.randrange(4)
                location = rng.choice([None, *location_ids]) if location_ids else None
                spec.rows.append((pid, patient_id, source, days_ago, status, location))
    spec.log_style = rng.choice(["rows", "rows", "columns"])
    spec.log_seed = rng.randrange(2**32)
    for index in range(rng.choice([0, 0, 0, 1, 2, 3])):
        pool = ids + unknown_ids[:1]
        members = rng.sample(pool, min(len(pool), rng.randint(0, 5)))
        spec.groups.append((f"g{index}", rng.choice(["Team", "Physio", "Front desk", "Team"]), members))
    spec.pms_complete = rng.random() < 0.9
    spec.ptdirect_complete = rng.random() < 0.9
    spec.policy = {
        "mode": rng.choice(["observe", "propose", "apply-safe"]),
        "sharing_scope": rng.choice(["co-treating", "co-treating", "everyone"]),
        "master_recipients": rng.choice(["all-active", "manual"]),
        "lookback_days": rng.choice([1, 30, 90, 540, 540, 1000]),
        "recent_days": rng.choice([1, 30, 90, 90, 400]),
        "removal_threshold_percent": rng.choice([0, 30, 30, 100]),
        "removal_threshold_people": rng.choice([0, 2, 2, 10]),
    }
    baseline_roll = rng.random()
    active = [p[0] for p in spec.practitioners if p[3]]
    if baseline_roll < 0.3:
        spec.baseline = None
    elif baseline_roll < 0.5:
        spec.baseline = (active, rng.random() < 0.3)
    elif baseline_roll < 0.8:  # departures since the last accepted run
        spec.baseline = (
            active + [f"left-{i}" for i in range(rng.randint(1, 8))] + outside_ids,
            rng.random() < 0.4,
        )
    else:
        spec.baseline = ([], False)
    if spec.locations and rng.random() < 0.4:
        people = [p[0] for p in spec.practitioners] + [p[2] for p in spec.practitioners if p[2]]
        chosen = rng.sample(people, min(len(people), rng.randint(0, 3)))
        include = chosen[: len(chosen) // 2]
        included = {entry.strip().lower() for entry in include}  # a person in both is refused
        exclude = [entry for entry in chosen[len(chosen) // 2 :] if entry.strip().lower() not in included]
        locations = rng.sample([loc[0] for loc in spec.locations], rng.randint(0, len(spec.locations)))
        if locations or include or exclude:
            spec.scope = (locations, include, exclude)
    spec.previous_share = rng.choice([0.0, 0.5, 1.0])
    spec.stale_previous = rng.choice([0, 0, 2])
    spec.policy_only_share = rng.choice([0.0, 0.5])
    return spec


# --- either core's inputs and comparable outputs ---------------------------------------------


def _access_log(core: ModuleType, spec: Spec, as_of: date):
    rows = [
        core.PatientAccess(
            pid,
            patient,
            core.AccessSource(source),
            as_of - timedelta(days=days_ago),
            core.AccessStatus(status),
            loc,
        )
        for pid, patient, source, days_ago, status, loc in spec.rows
    ]
    if spec.log_style == "rows":
        return core.AccessLog.from_rows(rows)
    import numpy as np

    rng = random.Random(spec.log_seed)
    practitioners = sorted({row.practitioner_id for row in rows} | {f"unused-{i}" for i in range(3)})
    patients = sorted({row.patient_id for row in rows} | {"unused-patient"})
    rng.shuffle(practitioners)
    rng.shuffle(patients)
    locations = sorted({row.location for row in rows if row.location is not None})
    p_code = {pid: index for index, pid in enumerate(practitioners)}
    q_code = {pid: index for index, pid in enumerate(patients)}
    l_code = {lid: index for index, lid in enumerate(locations)}
    epoch = date(1970, 1, 1)
    return core.AccessLog(
        practitioners,
        patients,
        np.array([p_code[r.practitioner_id] for r in rows], dtype=np.int32),
        np.array([q_code[r.patient_id] for r in rows], dtype=np.int32),
        np.array([int(r.source) for r in rows], dtype=np.int8),
        np.array([int(r.status) for r in rows], dtype=np.int8),
        np.array([(r.last_seen - epoch).days for r in rows], dtype=np.int32),
        locations,
        np.array([-1 if r.location is None else l_code[r.location] for r in rows], dtype=np.int32),
    )


def build_inputs(core: ModuleType, spec: Spec) -> tuple[Any, Any, Any, Any]:
    """(pms, ptdirect, policy, baseline) of `spec` for `core` (the current or the old package)."""

    def practitioner(entry: tuple):
        pid, name, email, active, locations = entry
        return core.PmsPractitioner(pid, name, email, active, locations=locations)

    pms = core.PmsSnapshot(
        spec.system,
        tuple(map(practitioner, spec.practitioners)),
        _access_log(core, spec, spec.as_of),
        tuple(core.AccessGroup(gid, name, tuple(members)) for gid, name, members in spec.groups),
        spec.pms_complete,
        None if spec.locations is None else tuple(core.PmsLocation(*loc) for loc in spec.locations),
        tuple(map(practitioner, spec.outside)),
        frozenset(spec.excluded),
    )
    if "elsewhere" in core.PmsSnapshot.__dataclass_fields__:
        # The spec's outside practitioners stand for people the PMS has at another site (the
        # old core read everyone outside that way), and its exclude entries are their ids.
        pms = dataclasses.replace(
            pms,
            elsewhere=frozenset(entry[0] for entry in spec.outside),
            excluded_keys=frozenset(spec.excluded),
        )
    users = tuple(
        core.PtUser(
            email,
            name,
            core.UserStatus.CONFIRMED if confirmed else core.UserStatus.UNCONFIRMED,
            access,
            core.PmsLink(system, pid) if system else None,
        )
        for email, name, confirmed, access, system, pid in spec.users
    )
    ptdirect = core.PtDirectSnapshot(
        users,
        None if spec.master is None else core.MasterAccount(spec.master[0], tuple(spec.master[1])),
        tuple(core.SharingMember(*member) for member in spec.members),
        None if spec.clients is None else tuple(core.PhysitrackClient(*client) for client in spec.clients),
        spec.ptdirect_complete,
    )
    policy = core.Policy(
        mode=core.Mode(spec.policy.get("mode", "propose")),
        sharing_scope=core.SharingScope(spec.policy.get("sharing_scope", "co-treating")),
        master_recipients=core.MasterRecipients(spec.policy.get("master_recipients", "all-active")),
        lookback_days=spec.policy.get("lookback_days", 540),
        recent_days=spec.policy.get("recent_days", 90),
        removal_threshold_percent=spec.policy.get("removal_threshold_percent", 30),
        removal_threshold_people=spec.policy.get("removal_threshold_people", 2),
    )
    baseline = None if spec.baseline is None else core.Baseline(frozenset(spec.baseline[0]), spec.baseline[1])
    if spec.scope is not None:
        scopes = importlib.import_module(core.__name__ + ".scope")
        scope = scopes.Scope.of(*spec.scope)
        pms = scopes.apply_scope(pms, scope, spec.as_of - timedelta(days=policy.lookback_days))
    return pms, ptdirect, policy, baseline


def run(core: ModuleType, spec: Spec, previous: dict[str, Any] | None = None, policy_only=frozenset()):
    """The reconciliation of `spec` by `core`, and its report (given a previous report's findings)."""
    pms, ptdirect, policy, baseline = build_inputs(core, spec)
    result = core.reconcile(pms, ptdirect, policy, as_of=spec.as_of, pseudonym_key=KEY, baseline=baseline)
    proposal = core.ProposalInfo("proposal-1", "pending", result.operations) if result.operations else None
    report = core.build_report(
        "org-1",
        core.RunInfo("run-1", "manual", "succeeded", "2026-11-25T10:00:00Z", None),
        result,
        previous or {},
        proposal,
        policy_only=policy_only,
        timezone="Europe/Lisbon",
        scope={"locations": ["loc-0"]} if spec.locations else None,
    )
    return result, report


def previous_of(spec: Spec, report: dict[str, Any]) -> tuple[dict[str, Any], frozenset[str]]:
    """A previous report's findings for `spec`'s second run: a share of these findings (ongoing)
    plus some that are gone (resolved or carried), and the policy-only fingerprints."""
    rng = random.Random(repr(spec.rows[:3]) + str(len(spec.practitioners)))
    previous = {}
    for finding in report["findings"]:
        if rng.random() < spec.previous_share:
            previous[finding["fingerprint"]] = {**finding, "state": "new"}
    for index in range(spec.stale_previous):
        fingerprint = f"{index:020d}"
        previous[fingerprint] = {"kind": "pending_invitation", "fingerprint": fingerprint, "state": "new"}
    policy_only = frozenset(fp for fp in sorted(previous) if rng.random() < spec.policy_only_share)
    return previous, policy_only


def outputs(core: ModuleType, spec: Spec) -> dict[str, str]:
    """Everything a run produces, as text: the report JSON (first and second run), the findings,
    operations, pairs and picture as reprs, the rest of the reconciliation, and what the context
    offers the few readers of pairs (shared, peers, pairs at risk, departures, co-access pairs)."""
    import json

    try:
        result, report = run(core, spec)
    except ValueError as exc:  # a scope that cannot be applied (`ScopeError`): the run fails
        if type(exc).__name__ != "ScopeError":
            raise
        return {"scope error": str(exc)}
    previous, policy_only = previous_of(spec, report)
    _, second = run(core, spec, previous, policy_only)
    pms, ptdirect, policy, baseline = build_inputs(core, spec)
    context = core.context.build_context(pms, ptdirect, policy, spec.as_of, KEY, baseline)
    return {
        "report": json.dumps(report),
        "second report": json.dumps(second),
        "findings": repr(result.findings),
        "operations": repr(result.operations),
        "shared_pairs": repr(tuple(result.shared_pairs)),
        "picture": repr(result.picture),
        "rest": repr(
            (
                result.complete,
                result.suspicious,
                sorted(result.active_practitioners),
                result.practitioner_count,
                result.patient_count,
                len(result.shared_pairs),
            )
        ),
        "context.shared": repr(context.shared),
        "context.peers": repr(sorted((key, sorted(value)) for key, value in context.peers.items())),
        "context.pairs_at_risk": repr(sorted(context.pairs_at_risk)),
        "context.departures": repr(context.departures()),
        "co_access": repr(
            (
                context.co_access.patients_per_practitioner,
                context.co_access.distinct_patients,
                context.co_access.pairs,
            )
        ),
    }


def differences(old: ModuleType, new: ModuleType, spec: Spec) -> list[str]:
    """The names of the outputs that differ between the two cores (empty: identical)."""
    before, after = outputs(old, spec), outputs(new, spec)
    return [name for name in {**before, **after} if before.get(name) != after.get(name)]
