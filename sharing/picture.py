"""The sharing picture: each practitioner's PT Direct state and who shares patients with whom.

Pure, like the rest of the core: the page and the HTML report draw it, they never decide it.
States and pair kinds are defined here once, so a picture's legend is true for every mark:

- a pair is `at_risk` when both practitioners are active, confirmed, licensed PT Direct users
  (the master account excluded: nobody can share patients with it) and at least one of them does
  not share patients (each one's PMS integration then creates its own copy of their shared
  patients): `Context.pair_at_risk`, the very test of the `duplicate_patient_risk` rule; `shared`
  when both share patients in PT Direct; otherwise `outside`.
- a practitioner's state is the first that applies, in the order of `PractitionerState`.

Practitioners come in *team order*: a single-linkage merge of the pairs, heaviest first, whose
leaf order keeps every group of practitioners who treat together next to each other, so a
matrix of the pairs shows teams as blocks along its diagonal.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from operator import itemgetter

import numpy as np

from sharing.context import Context
from sharing.identity import normalise_email


class PractitionerState(enum.Enum):
    DEPARTED = "departed"  # inactive in the PMS
    MASTER_ACCOUNT = "master_account"  # the PT Direct master account
    NO_LICENCE = "no_licence"  # no PT Direct user, or one without practitioner access
    UNCONFIRMED = "unconfirmed"  # has not accepted the PT Direct invitation
    SHARING_PATIENTS = "sharing_patients"  # in practitioner sharing, sharing patients
    CONTENT_ONLY = "content_only"  # in practitioner sharing, content only
    NOT_IN_SHARING = "not_in_sharing"  # a confirmed, licensed user outside practitioner sharing


class PairKind(enum.Enum):
    AT_RISK = "at_risk"
    SHARED = "shared"
    OUTSIDE = "outside"


@dataclass(frozen=True, slots=True)
class PicturePractitioner:
    pms_id: str
    name: str
    email: str | None
    state: PractitionerState


@dataclass(frozen=True, slots=True)
class PicturePair:
    """Two practitioners (by PMS id) who share patients, and what that means in PT Direct."""

    first: str
    second: str
    shared_patients: int
    kind: PairKind

    @property
    def at_risk(self) -> bool:
        return self.kind is PairKind.AT_RISK


@dataclass(frozen=True)
class SharingPicture:
    practitioners: tuple[PicturePractitioner, ...]  # team order; those without pairs last
    pairs: tuple[PicturePair, ...]


_KINDS = (PairKind.AT_RISK, PairKind.SHARED, PairKind.OUTSIDE)


def sharing_picture(context: Context) -> SharingPicture:
    """Every PMS practitioner's state and every pair that shares patients, in team order."""
    people = {pid: _practitioner(context, pid) for pid in context.practitioners}
    table = context.pairs
    # Whether each one shares patients is looked up once per practitioner, and each pair's kind
    # is decided by array operations (a run has thousands of pairs).
    sharing = {
        pid
        for pid, user in context.identity.user_by_practitioner.items()
        if context.is_sharing_patients(user.email)
    }
    shares = np.array([pid in sharing for pid in table.ids], dtype=bool)
    both_share = shares[table.firsts] & shares[table.seconds] if len(shares) else np.zeros(0, dtype=bool)
    kinds = np.where(context.at_risk, 0, np.where(both_share, 1, 2)).tolist()
    firsts, seconds = table.first_ids, table.second_ids
    shared_patients = table.shared_patients.tolist()
    pairs = tuple(map(PicturePair, firsts, seconds, shared_patients, map(_KINDS.__getitem__, kinds)))
    # Heaviest first, ties in pair order (the table's, by ids): a stable sort by weight alone.
    heaviest_first = np.argsort(-table.shared_patients, kind="stable").tolist()
    order = _team_order(
        sorted(people),
        [firsts[row] for row in heaviest_first],
        [seconds[row] for row in heaviest_first],
    )
    return SharingPicture(practitioners=tuple(people[pid] for pid in order), pairs=pairs)


def _practitioner(context: Context, pid: str) -> PicturePractitioner:
    practitioner = context.practitioners[pid]
    user = context.identity.user_by_practitioner.get(pid)
    email = user.email if user else practitioner.email
    key = normalise_email(email) or ""
    member = context.members.get(key) if user else None
    if not practitioner.active:
        state = PractitionerState.DEPARTED
    elif user is not None and key == context.master_email:
        state = PractitionerState.MASTER_ACCOUNT
    elif user is None or not user.practitioner_access:
        state = PractitionerState.NO_LICENCE
    elif not user.confirmed:
        state = PractitionerState.UNCONFIRMED
    elif member is not None and member.share_patients:
        state = PractitionerState.SHARING_PATIENTS
    elif member is not None:
        state = PractitionerState.CONTENT_ONLY
    else:
        state = PractitionerState.NOT_IN_SHARING
    return PicturePractitioner(pid, practitioner.name, email, state)


def team_order(ids: list[str], weighted_pairs: list[tuple[str, str, int]]) -> list[str]:
    """Ids ordered so that practitioners who treat together sit together.

    Pairs are merged heaviest first (single linkage, as Kruskal's algorithm does); each merge
    joins two runs of ids end to end, turned so the two practitioners that linked them meet.
    Larger groups come first; practitioners without pairs come last, in the order given.
    """
    # Heaviest first, ties by ids: a stable sort by weight of the pairs in id order.
    ordered = sorted(sorted(weighted_pairs), key=itemgetter(2), reverse=True)
    return _team_order(ids, [first for first, _, _ in ordered], [second for _, second, _ in ordered])


def _team_order(ids: list[str], firsts: list[str], seconds: list[str]) -> list[str]:
    """`team_order` of the pairs (firsts[i], seconds[i]), given heaviest first."""
    runs: dict[str, list[str]] = {pid: [pid] for pid in ids}
    run_of = {pid: pid for pid in ids}
    for first, second in zip(firsts, seconds, strict=True):
        left_key, right_key = run_of.get(first), run_of.get(second)
        if left_key == right_key or left_key is None or right_key is None:
            continue
        left, right = runs[left_key], runs[right_key]
        if left.index(first) < len(left) / 2:
            left.reverse()  # `first` towards the end of the left run
        if right.index(second) >= len(right) / 2:
            right.reverse()  # `second` towards the start of the right run
        if len(right) > len(left):
            left, right = right[::-1], left[::-1]
            left_key, right_key = right_key, left_key
        left.extend(right)
        runs[left_key] = left
        del runs[right_key]
        for pid in right:
            run_of[pid] = left_key
    position = {pid: index for index, pid in enumerate(ids)}
    ordered = sorted(runs.values(), key=lambda run: (len(run) == 1, -len(run), position[run[0]]))
    return [pid for run in ordered for pid in run]
