"""The lifecycles of runs, proposals and operations: their states and every legal move.

Each status change in the store is a conditional UPDATE from the states this table allows
(compare-and-set), so two processes racing over one row can never both win, and an illegal
move is a bug that raises instead of silently overwriting someone else's work.

    run:        queued -> running -> succeeded | failed
                running -> running (a lapsed lease taken over); queued | running -> failed
                (applying -> applying, too: a redelivered apply takes over a lapsed lease)
    proposal:   proposed -> approved -> applying -> applied | approved (steps wait) | failed
                proposed | approved | applying -> superseded (replaced, stale, PT Direct changed)
                proposed | approved | failed | reopened -> rejected (not while being applied)
                failed | reopened -> approved; failed | reopened -> superseded
                applied | applied_by_hand -> reopened (not in effect) | applied (verified)
    operation:  pending -> applying -> applied | failed;  pending | waiting -> waiting | manual
                pending | waiting | applying | failed -> closed (no longer called for: never sent)
                pending | waiting | manual -> could_not_do (manual PT Direct: the admin could not)
"""

from __future__ import annotations

import enum


class IllegalTransition(RuntimeError):
    """A status change the lifecycle does not allow: a bug, never a user error."""


class RunStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class ProposalStatus(enum.StrEnum):
    PROPOSED = "proposed"
    APPROVED = "approved"
    APPLYING = "applying"
    APPLIED = "applied"
    APPLIED_BY_HAND = "applied_by_hand"
    REOPENED = "reopened"
    REJECTED = "rejected"
    SUPERSEDED = "superseded"
    FAILED = "failed"


class OperationStatus(enum.StrEnum):
    PENDING = "pending"
    APPLYING = "applying"
    APPLIED = "applied"
    WAITING = "waiting"
    MANUAL = "manual"
    FAILED = "failed"
    CLOSED = "closed"
    COULD_NOT_DO = "could_not_do"
    """`--ptdirect manual`: the admin could not make this change in PT Direct (with a reason)."""


R, P, Op = RunStatus, ProposalStatus, OperationStatus

RUN_MOVES: dict[RunStatus, frozenset[RunStatus]] = {
    R.QUEUED: frozenset({R.RUNNING, R.FAILED}),
    R.RUNNING: frozenset({R.RUNNING, R.SUCCEEDED, R.FAILED}),
    R.SUCCEEDED: frozenset(),
    R.FAILED: frozenset(),
}

PROPOSAL_MOVES: dict[ProposalStatus, frozenset[ProposalStatus]] = {
    P.PROPOSED: frozenset({P.APPROVED, P.APPLYING, P.APPLIED, P.REJECTED, P.SUPERSEDED, P.APPLIED_BY_HAND}),
    P.APPROVED: frozenset(
        {P.APPLYING, P.APPLIED, P.SUPERSEDED, P.FAILED, P.APPLIED_BY_HAND, P.APPROVED, P.REJECTED}
    ),
    P.APPLYING: frozenset({P.APPLYING, P.APPLIED, P.APPROVED, P.FAILED, P.SUPERSEDED}),
    P.APPLIED: frozenset({P.REOPENED, P.APPLIED}),
    P.APPLIED_BY_HAND: frozenset({P.REOPENED, P.APPLIED}),
    P.REOPENED: frozenset({P.SUPERSEDED, P.APPLIED_BY_HAND, P.REJECTED, P.APPROVED}),
    P.FAILED: frozenset({P.APPROVED, P.SUPERSEDED, P.APPLIED_BY_HAND, P.REJECTED}),
    P.REJECTED: frozenset(),
    P.SUPERSEDED: frozenset(),
}

OPERATION_MOVES: dict[OperationStatus, frozenset[OperationStatus]] = {
    Op.PENDING: frozenset(
        {Op.APPLYING, Op.APPLIED, Op.WAITING, Op.MANUAL, Op.FAILED, Op.CLOSED, Op.COULD_NOT_DO}
    ),
    Op.WAITING: frozenset(
        {Op.PENDING, Op.APPLYING, Op.APPLIED, Op.WAITING, Op.MANUAL, Op.CLOSED, Op.COULD_NOT_DO}
    ),
    Op.APPLYING: frozenset({Op.APPLIED, Op.FAILED, Op.CLOSED, Op.APPLYING}),
    Op.MANUAL: frozenset({Op.APPLIED, Op.CLOSED, Op.COULD_NOT_DO}),
    Op.COULD_NOT_DO: frozenset({Op.CLOSED}),
    Op.FAILED: frozenset({Op.PENDING, Op.APPLYING, Op.APPLIED, Op.CLOSED}),
    Op.APPLIED: frozenset(),
    Op.CLOSED: frozenset(),
}

OPEN_PROPOSALS = frozenset({P.PROPOSED, P.APPROVED, P.APPLYING, P.REOPENED, P.FAILED})


def sources(moves: dict, target: enum.Enum) -> tuple[str, ...]:
    """Every state from which `target` may be reached: the WHERE of a compare-and-set."""
    return tuple(sorted(state.value for state, allowed in moves.items() if target in allowed))


def check(moves: dict, current: str, target: enum.Enum) -> None:
    """Raise unless `current -> target` is a legal move of this lifecycle."""
    state = type(target)(current)
    if target not in moves[state]:
        raise IllegalTransition(f"{type(target).__name__}: {state.value} -> {target.value} is not allowed")


UNFINISHED_RUNS = frozenset({R.QUEUED, R.RUNNING})


def failed_attempt(run) -> str | None:
    """Why the last attempt of a run that is still being retried failed, or None.

    A run's `error` has one meaning per state: on a finished (failed) run it is why the run
    failed; on an unfinished run it is the reason its last attempt gave back the lease and
    will be tried again. The state says which; no prefix inside the text carries it.
    """
    if run.status in UNFINISHED_RUNS and run.error:
        return run.error
    return None


def diagram(moves: dict) -> str:
    """The table as a Mermaid state diagram: docs/architecture.md shows these (a test keeps them equal)."""
    lines = ["stateDiagram-v2"]
    for state, allowed in moves.items():
        for target in sorted(allowed, key=lambda s: s.value):
            lines.append(f"    {state.value} --> {target.value}")
    return "\n".join(lines)
