"""An organisation's part of a shared PMS account: its locations and people (a clinic group).

A group often runs one PMS account across several sites while each site has its own PT Direct
account, so each organisation reconciles only its part of the PMS:

- `locations`: only access rows at those locations count, and a practitioner belongs when the PMS
  lists them as working at one of them or they have a counted (not cancelled) row at one of them
  within the lookback window. A row whose PMS does not say where it happened is at no location.
- `include`: practitioners (PMS ids, or emails) who belong whatever the locations say.
- `exclude`: practitioners who never belong, and whom this organisation leaves alone entirely.
  Exclude wins over include: an entry in both lists is refused when the scope is set, and a
  person named in both lists in different ways (id in one, email in the other) is excluded.

With no locations, `include` alone means "only these people" and `exclude` alone "everyone but
these". Everyone outside the scope goes to `PmsSnapshot.outside`: never a finding or an
operation here, except a confirmed sharing member of this organisation whom the PMS now places
at another of its locations (`PmsSnapshot.elsewhere`), who departs like anyone leaving the PMS
(transfer first, approval, the removal threshold). Being outside is not evidence of leaving:
outside a scope by people, for want of any location in the read, or seen only at sites first
used after this organisation's were last used (a renamed site: `newer_sites_only`), nobody
departs. An include
entry that matches nobody fails the run (`ScopeError`), and a PT Direct user an exclude entry
names is left alone even when no PMS record matches it.

Pure: no I/O. The shell reads the PMS once per account and applies each organisation's scope.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

import numpy as np

from sharing.access import AccessStatus, day_number
from sharing.identity import normalise_email
from sharing.model import PmsLocation, PmsPractitioner, PmsSnapshot


class ScopeError(ValueError):
    """A scope that cannot be applied: it names a location the PMS does not have (any more), the
    PMS cannot tell locations apart, or an include entry matches nobody. A run with such a scope
    fails: it never reports an organisation whose missing people would look departed.

    `option`: the organisation option to fix (`locations` or `include`)."""

    def __init__(self, message: str, option: str = "locations") -> None:
        super().__init__(message)
        self.option = option


def person_key(entry: str) -> str:
    """An include/exclude entry as compared: an email normalised (it contains '@'), else an id."""
    text = entry.strip()
    return normalise_email(text) or "" if "@" in text else text


@dataclass(frozen=True, slots=True)
class Scope:
    locations: tuple[str, ...] = ()
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    @property
    def everything(self) -> bool:
        """No scope: the organisation is the whole PMS account."""
        return not (self.locations or self.include or self.exclude)

    def as_dict(self) -> dict[str, list[str]]:
        return {
            "locations": list(self.locations),
            "include": list(self.include),
            "exclude": list(self.exclude),
        }

    @classmethod
    def from_dict(cls, document: Mapping[str, Any] | None) -> Scope:
        if not document:
            return cls()
        return cls.of(
            document.get("locations") or (), document.get("include") or (), document.get("exclude") or ()
        )

    @classmethod
    def of(cls, locations: Iterable[str], include: Iterable[str], exclude: Iterable[str]) -> Scope:
        """A scope from raw entries: trimmed, emails normalised, duplicates dropped, order kept.
        Raises ScopeError for an empty entry or a person in both lists."""

        def clean(values: Iterable[str], what: str, key=lambda text: text.strip()) -> tuple[str, ...]:
            seen: dict[str, None] = {}
            for value in values:
                cleaned = key(str(value))
                if not cleaned:
                    raise ScopeError(f"an empty {what} entry")
                seen.setdefault(cleaned, None)
            return tuple(seen)

        scope = cls(
            clean(locations, "location"),
            clean(include, "include", person_key),
            clean(exclude, "exclude", person_key),
        )
        both = sorted(set(scope.include) & set(scope.exclude))
        if both:
            raise ScopeError(f"{', '.join(both)} is both included and excluded: choose one")
        return scope


def _matches(practitioner: PmsPractitioner, keys: frozenset[str]) -> bool:
    if not keys:
        return False
    return practitioner.id in keys or (normalise_email(practitioner.email) or "\0") in keys


def unknown_locations(scope: Scope, locations: tuple[PmsLocation, ...] | None) -> tuple[str, ...]:
    known = {location.id for location in locations or ()}
    return tuple(location for location in scope.locations if location not in known)


def describe_locations(locations: tuple[PmsLocation, ...] | None) -> str:
    if not locations:
        return "the PMS lists no locations"
    return "the PMS's locations: " + "; ".join(f"{loc.id} ({loc.name})" for loc in locations)


def check_locations(scope: Scope, snapshot: PmsSnapshot) -> None:
    """Raise ScopeError when the scope names locations the PMS cannot tell apart or does not have."""
    if not scope.locations:
        return
    if snapshot.locations is None:
        raise ScopeError(
            f"the {snapshot.system} connector cannot tell locations apart: scope by people instead"
        )
    missing = unknown_locations(scope, snapshot.locations)
    if missing:
        raise ScopeError(
            f"location {', '.join(missing)} is not in {snapshot.system} (deleted or a typo?); "
            f"{describe_locations(snapshot.locations)}"
        )


def _seen_at(snapshot: PmsSnapshot, wanted: frozenset[str], since: date) -> tuple[np.ndarray, set[str]]:
    """Rows at the wanted locations, and who has a counted row there since `since`."""
    access = snapshot.access
    codes = [code for code, location in enumerate(access.location_ids) if location in wanted]
    at_location = np.isin(access.location_codes, np.array(codes, dtype=np.int32))
    counted = at_location & (access.statuses == AccessStatus.ACTIVE) & (access.days >= day_number(since))
    seen = {access.practitioner_ids[code] for code in np.unique(access.practitioner_codes[counted]).tolist()}
    return at_location, seen


def apply_scope(snapshot: PmsSnapshot, scope: Scope, since: date) -> PmsSnapshot:
    """The organisation's part of a PMS read (see the module docstring). `since` is the start of
    the lookback window. Raises ScopeError for a location the read does not have."""
    if scope.everything:
        return snapshot
    check_locations(scope, snapshot)
    wanted = frozenset(scope.locations)
    include, exclude = frozenset(scope.include), frozenset(scope.exclude)
    at_location, seen = _seen_at(snapshot, wanted, since) if wanted else (None, set())
    inside: list[PmsPractitioner] = []
    outside: list[PmsPractitioner] = []
    excluded: set[str] = set()
    _check_include_matches(scope, snapshot)
    for practitioner in snapshot.practitioners:
        if _matches(practitioner, exclude):
            outside.append(practitioner)
            excluded.add(practitioner.id)
        elif (
            _matches(practitioner, include)
            or (wanted and (wanted.intersection(practitioner.locations) or practitioner.id in seen))
            or (not wanted and not include)
        ):
            inside.append(practitioner)
        else:
            outside.append(practitioner)
    access = snapshot.access
    position = {practitioner_id: code for code, practitioner_id in enumerate(access.practitioner_ids)}
    members = sorted(position[p.id] for p in inside if p.id in position)
    keep = np.isin(access.practitioner_codes, np.array(members, dtype=np.int32))
    if at_location is not None:
        keep &= at_location
    return replace(
        snapshot,
        practitioners=tuple(inside),
        access=access.select(keep),
        outside=tuple(outside),
        excluded=frozenset(excluded),
        excluded_keys=exclude,
        **(_placed_elsewhere(snapshot, wanted, outside, since) if wanted else {}),
    )


def _check_include_matches(scope: Scope, snapshot: PmsSnapshot) -> None:
    """Raise ScopeError for an include entry that names nobody in the PMS read.

    Such an entry is stale (the PMS now spells the email otherwise, or the record is gone), and
    the person it meant would fall outside the scope and could look as if they had moved to
    another site: the run fails and names the entry instead.
    """
    if not scope.include:
        return
    known = {p.id for p in snapshot.practitioners}
    known |= {email for p in snapshot.practitioners if (email := normalise_email(p.email))}
    stale = [entry for entry in scope.include if entry not in known]
    if stale:
        raise ScopeError(
            f"include entry {', '.join(stale)} matches no practitioner in {snapshot.system} "
            "(a changed email or a removed record?)",
            option="include",
        )


def _placed_elsewhere(
    snapshot: PmsSnapshot, wanted: frozenset[str], outside: list[PmsPractitioner], since: date
) -> dict[str, frozenset[str]]:
    """`elsewhere`: who among `outside` the PMS places at another location (listed as working
    there, or a counted row there in the window); `newer_sites_only`: who has counted rows only
    at sites first used after the wanted locations were last used (`_newer_sites`).

    Someone outside only for want of any location (rows that name none, a PMS that lists no
    clinician sites) has not moved anywhere the read can show. Nor has someone seen only at a
    site that began when the organisation's sites stopped: that is what a renamed site looks
    like in an export (a new name is a new location), and people hired after the rename would
    otherwise look as if they had moved away from their own clinic.
    """
    others = frozenset(snapshot.access.location_ids) - wanted
    newer = _newer_sites(snapshot, wanted, others)
    _, seen = _seen_at(snapshot, others - newer, since) if others - newer else (None, set())
    _, seen_newer = _seen_at(snapshot, newer, since) if newer else (None, set())
    # A site the PMS lists someone at counts like their rows there: not when it is a newer site.
    placed = frozenset(p.id for p in outside if p.id in seen or set(p.locations) - wanted - newer)
    return {
        "elsewhere": placed,
        "newer_sites_only": frozenset(
            p.id
            for p in outside
            if p.id not in placed and (p.id in seen_newer or newer.intersection(p.locations))
        ),
    }


def _newer_sites(snapshot: PmsSnapshot, wanted: frozenset[str], others: frozenset[str]) -> frozenset[str]:
    """The locations of `others` whose first counted row in the read is on or after the last
    counted row at any wanted location, and after the first (none when the wanted locations
    have no counted row).

    On or after the last: a site renamed in the middle of a working day has rows under both
    names that day. After the first: sites whose rows all fall on the day the wanted ones began
    and ended tell nothing about which came first.
    """
    access = snapshot.access
    counted = (access.statuses == AccessStatus.ACTIVE) & (access.location_codes >= 0)
    codes, days = access.location_codes[counted], access.days[counted]
    ids = access.location_ids
    wanted_codes = np.array([code for code, location in enumerate(ids) if location in wanted], dtype=np.int32)
    at_wanted = np.isin(codes, wanted_codes)
    if not others or not at_wanted.any():
        return frozenset()
    here = days[at_wanted]
    first_here, last_here = int(here.min()), int(here.max())
    never = np.iinfo(np.int64).max  # a location without counted rows began at no day
    first = np.full(len(ids), never, dtype=np.int64)
    np.minimum.at(first, codes, days)
    began = first.tolist()
    return frozenset(
        location
        for location, day in zip(ids, began, strict=True)
        if location in others and last_here <= day != never and day > first_here
    )


@dataclass(frozen=True, slots=True)
class LocationCount:
    location: PmsLocation
    practitioners: int
    """Active practitioners who work there or have a counted row there within the window."""


def location_counts(snapshot: PmsSnapshot, since: date) -> tuple[LocationCount, ...]:
    """Every location of the read with its active practitioners, for choosing a scope."""
    counts = []
    active = [p for p in snapshot.practitioners if p.active]
    for location in snapshot.locations or ():
        _, seen = _seen_at(snapshot, frozenset({location.id}), since)
        people = {p.id for p in active if location.id in p.locations or p.id in seen}
        counts.append(LocationCount(location, len(people)))
    return tuple(counts)


def describe_scope(document: Mapping[str, Any] | None) -> str | None:
    """A report's `scope` in one line for people (None for the whole PMS account)."""
    if not document:
        return None
    names = document.get("location_names") or {}
    parts = []
    if document.get("locations"):
        parts.append("at " + ", ".join(f"{names.get(loc, loc)} ({loc})" for loc in document["locations"]))
    if document.get("include"):
        parts.append("including " + ", ".join(document["include"]))
    if document.get("exclude"):
        parts.append("excluding " + ", ".join(document["exclude"]))
    if "practitioners_outside" in document:
        parts.append(f"{document['practitioners_outside']} practitioner(s) of the PMS account left out")
    return "scope: " + "; ".join(parts)
