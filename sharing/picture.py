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

from sharing.context import Context, PairTable


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


@dataclass(frozen=True, slots=True, init=False)
class PicturePractitioner:
    pms_id: str
    name: str
    email: str | None
    state: PractitionerState

    def __init__(self, pms_id: str, name: str, email: str | None, state: PractitionerState) -> None:
        # Through the slots' own setters: a frozen dataclass's generated `__init__` goes through
        # `object.__setattr__` by name, about twice as slow, for every practitioner of every run.
        _set_pms_id(self, pms_id)
        _set_name(self, name)
        _set_email(self, email)
        _set_state(self, state)


_set_pms_id = PicturePractitioner.pms_id.__set__  # type: ignore[attr-defined]
_set_name = PicturePractitioner.name.__set__  # type: ignore[attr-defined]
_set_email = PicturePractitioner.email.__set__  # type: ignore[attr-defined]
_set_state = PicturePractitioner.state.__set__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True, init=False)
class PicturePair:
    """Two practitioners (by PMS id) who share patients, and what that means in PT Direct."""

    first: str
    second: str
    shared_patients: int
    kind: PairKind

    def __init__(self, first: str, second: str, shared_patients: int, kind: PairKind) -> None:
        # As `PicturePractitioner`'s: a run makes one per pair, thousands.
        _set_first(self, first)
        _set_second(self, second)
        _set_shared_patients(self, shared_patients)
        _set_kind(self, kind)

    @property
    def at_risk(self) -> bool:
        return self.kind is PairKind.AT_RISK


_set_first = PicturePair.first.__set__  # type: ignore[attr-defined]
_set_second = PicturePair.second.__set__  # type: ignore[attr-defined]
_set_shared_patients = PicturePair.shared_patients.__set__  # type: ignore[attr-defined]
_set_kind = PicturePair.kind.__set__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class PictureColumns:
    """A picture as columns, the way the core builds it (no object per pair or practitioner).

    `ids`, `names`, `emails` and `states` are the practitioners in team order. The pairs are the
    rows of `pairs` (the context's `PairTable`, in pair order): `kinds` holds each row's kind as
    an index of `PAIR_KINDS`, and `places` each id of `pairs.ids` as its place in team order.
    """

    ids: list[str]
    names: list[str]
    emails: list[str | None]
    states: list[PractitionerState]
    pairs: PairTable
    kinds: np.ndarray
    places: np.ndarray


PAIR_KINDS = (PairKind.AT_RISK, PairKind.SHARED, PairKind.OUTSIDE)
_KINDS = PAIR_KINDS


class SharingPicture:
    """Every practitioner's state (`practitioners`, team order; those without pairs last) and
    every pair that shares patients (`pairs`, in pair order).

    The core makes it from `columns`; the per-item objects are made when first read. The worker
    stores a picture from its columns (`worker.picture.picture_document`) and never reads them:
    an object per pair and practitioner (9,000 at 100,000 access rows) cost a tenth of a run.
    Made from objects (`SharingPicture(practitioners, pairs)`), `columns` is None. Equal to a
    picture with the same practitioners and pairs, however made.
    """

    __slots__ = ("_pairs", "_practitioners", "columns")

    def __init__(
        self,
        practitioners: tuple[PicturePractitioner, ...] = (),
        pairs: tuple[PicturePair, ...] = (),
        *,
        columns: PictureColumns | None = None,
    ) -> None:
        self.columns = columns
        self._practitioners: tuple[PicturePractitioner, ...] | None = None if columns else practitioners
        self._pairs: tuple[PicturePair, ...] | None = None if columns else pairs

    @property
    def practitioners(self) -> tuple[PicturePractitioner, ...]:
        if self._practitioners is None:
            columns = self.columns
            assert columns is not None
            self._practitioners = tuple(
                map(PicturePractitioner, columns.ids, columns.names, columns.emails, columns.states)
            )
        return self._practitioners

    @property
    def pairs(self) -> tuple[PicturePair, ...]:
        if self._pairs is None:
            columns = self.columns
            assert columns is not None
            table = columns.pairs
            self._pairs = tuple(
                map(
                    PicturePair,
                    table.first_ids,
                    table.second_ids,
                    table.shared_patients.tolist(),
                    map(_KINDS.__getitem__, columns.kinds.tolist()),
                )
            )
        return self._pairs

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SharingPicture):
            return NotImplemented
        return (self.practitioners, self.pairs) == (other.practitioners, other.pairs)

    def __hash__(self) -> int:
        return hash((self.practitioners, self.pairs))

    def __repr__(self) -> str:
        return f"SharingPicture(practitioners={self.practitioners!r}, pairs={self.pairs!r})"


def sharing_picture(context: Context) -> SharingPicture:
    """Every PMS practitioner's state and every pair that shares patients, in team order."""
    ids = sorted(context.practitioners)
    names, emails, states, sharing = _practitioners(context, ids)
    table = context.pairs
    # Each of the table's ids as a position in `ids` (-1 for an id the PMS does not list): when
    # the table has exactly the PMS's practitioners (the usual case), their ranks as strings.
    if context.practitioners.keys() == set(table.ids) and len(table.ids) == len(ids):
        positions = table.ranks
    else:
        position = {pid: index for index, pid in enumerate(ids)}
        positions = np.array([position.get(pid, -1) for pid in table.ids], dtype=np.int64)
    # Whether each one shares patients is found once per practitioner (`_practitioners`), and
    # each pair's kind is decided by array operations (a run has thousands of pairs).
    shares = np.append(np.array(sharing, dtype=bool), False)[positions]  # -1: the False added
    kinds = np.where(context.at_risk, 0, np.where(shares[table.firsts] & shares[table.seconds], 1, 2))
    # Each pair's two practitioners as positions in `ids` (every practitioner in a pair is one
    # of them), heaviest pair first, ties in pair order (the table's, by ids): a stable sort.
    heaviest_first = np.argsort(-table.shared_patients, kind="stable")
    firsts = positions[table.firsts[heaviest_first]]
    seconds = positions[table.seconds[heaviest_first]]
    known = (firsts >= 0) & (seconds >= 0)
    order = _team_order(len(ids), firsts[known].tolist(), seconds[known].tolist())
    place = np.empty(len(ids) + 1, dtype=np.int64)
    place[order] = np.arange(len(order))
    place[-1] = -1  # an id missing from `ids` (position -1) has no place
    return SharingPicture(
        columns=PictureColumns(
            ids=list(map(ids.__getitem__, order)),
            names=list(map(names.__getitem__, order)),
            emails=list(map(emails.__getitem__, order)),
            states=list(map(states.__getitem__, order)),
            pairs=table,
            kinds=kinds,
            places=place[positions],
        )
    )


def _practitioners(
    context: Context, ids: list[str]
) -> tuple[list[str], list[str | None], list[PractitionerState], list[bool]]:
    """The name, email and state of each practitioner of `ids`, in one loop over the context's
    lookups (one call per practitioner and their re-reading cost a sixth of this, 2,000
    practitioners a run), and whether their PT Direct user shares patients in practitioner
    sharing (`Context.is_sharing_patients` of their user's email: their member shares patients).
    """
    practitioners = context.practitioners
    users = context.identity.user_by_practitioner
    keys = context.identity.email_by_practitioner  # each user's email, normalised
    members = context.members
    master_email = context.master_email
    names: list[str] = []
    emails: list[str | None] = []
    states: list[PractitionerState] = []
    sharing: list[bool] = []
    for pid in ids:
        practitioner = practitioners[pid]
        user = users.get(pid)
        email = user.email if user else practitioner.email
        key = (keys[pid] or "") if user else ""  # read only for someone with a user
        member = members.get(key) if user else None
        sharing.append(member is not None and member.share_patients)
        if not practitioner.active:
            state = PractitionerState.DEPARTED
        elif user is not None and key == master_email:
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
        names.append(practitioner.name)
        emails.append(email)
        states.append(state)
    return names, emails, states, sharing


def team_order(ids: list[str], weighted_pairs: list[tuple[str, str, int]]) -> list[str]:
    """Ids ordered so that practitioners who treat together sit together.

    Pairs are merged heaviest first (single linkage, as Kruskal's algorithm does); each merge
    joins two runs of ids end to end, turned so the two practitioners that linked them meet.
    Larger groups come first; practitioners without pairs come last, in the order given.
    """
    # Heaviest first, ties by ids: a stable sort by weight of the pairs in id order.
    ordered = sorted(sorted(weighted_pairs), key=itemgetter(2), reverse=True)
    position = {pid: index for index, pid in enumerate(ids)}
    known = [
        (position[first], position[second])
        for first, second, _ in ordered
        if first in position and second in position
    ]
    order = _team_order(len(ids), [first for first, _ in known], [second for _, second in known])
    return [ids[index] for index in order]


def _team_order(count: int, firsts: list[int], seconds: list[int]) -> list[int]:
    """`team_order` of positions 0 .. count - 1, for the pairs (firsts[i], seconds[i]) given
    heaviest first. Positions, not ids: list indexing instead of a dict lookup per pair."""
    runs: dict[int, list[int]] = {index: [index] for index in range(count)}
    run_of = list(range(count))
    for first, second in zip(firsts, seconds, strict=True):
        left_key, right_key = run_of[first], run_of[second]
        if left_key == right_key:
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
        for index in right:
            run_of[index] = left_key
    ordered = sorted(runs.values(), key=lambda run: (len(run) == 1, -len(run), run[0]))
    return [index for run in ordered for index in run]
