"""Every connector's location filter, against its emulator serving the same three-site group
(`connectors.emulators.group`): sites, who works where, where each appointment happened."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pytest

from connectors.emulators.group import EMAIL_DOMAIN, PEOPLE, SITES, visits
from sharing import PmsSnapshot
from sharing.scope import Scope, ScopeError, apply_scope

TODAY = date.today()
WINDOW = TODAY - timedelta(days=540)
AGENT = "ptsync-test (test@clinic.example)"


@dataclass
class Case:
    connector: object
    site_ids: tuple[str, str, str]
    """The vendor's ids of North, South and East."""
    links: bool
    """The vendor lists who works where (else belonging comes from appointments alone)."""


@contextmanager
def cliniko(tmp_path: Path) -> Iterator[Case]:
    from connectors.cliniko import ClinikoConnector
    from connectors.emulators.cliniko import ClinikoEmulator, generate_group

    with ClinikoEmulator(generate_group(today=TODAY), "group-key-au1") as emulator:
        connector = ClinikoConnector(
            "group-key-au1", base_url=emulator.base_url, user_agent=AGENT, read_locations=True
        )
        yield Case(connector, ("1", "2", "3"), True)


@contextmanager
def fhir(tmp_path: Path) -> Iterator[Case]:
    from connectors.emulators.fhir import FhirEmulator, generate_group
    from connectors.fhir import FhirConnector

    with FhirEmulator(generate_group(TODAY)) as emulator:
        connector = FhirConnector(emulator.base_url, user_agent=AGENT, read_locations=True)
        yield Case(connector, ("loc-1", "loc-2", "loc-3"), True)


@contextmanager
def halaxy(tmp_path: Path) -> Iterator[Case]:
    from connectors.emulators.halaxy import HalaxyEmulator, generate_group
    from connectors.halaxy import HalaxyConnector

    with HalaxyEmulator(generate_group(TODAY), client_id="c", client_secret="s") as emulator:
        connector = HalaxyConnector(
            emulator.base_url, client_id="c", client_secret="s", user_agent=AGENT, read_locations=True
        )
        yield Case(connector, ("CL-1", "CL-2", "CL-3"), True)


@contextmanager
def nookal(tmp_path: Path) -> Iterator[Case]:
    from connectors.emulators.nookal import NookalEmulator, generate_group
    from connectors.nookal import NookalConnector

    with NookalEmulator(generate_group(TODAY), "nookal-key") as emulator:
        connector = NookalConnector(
            "nookal-key", base_url=emulator.base_url, user_agent=AGENT, read_locations=True
        )
        yield Case(connector, ("1", "2", "3"), True)


@contextmanager
def semble(tmp_path: Path) -> Iterator[Case]:
    from connectors.emulators.semble import SembleEmulator, generate_group
    from connectors.semble import SembleConnector

    data = generate_group(TODAY)
    with SembleEmulator(data, "semble-token", requests_per_window=10_000) as emulator:
        connector = SembleConnector(
            "semble-token", url=emulator.graphql_url, user_agent=AGENT, read_locations=True
        )
        ids = tuple(location["id"] for location in data["locations"])
        yield Case(connector, ids, False)


@contextmanager
def export(tmp_path: Path) -> Iterator[Case]:
    from connectors.export import ExportConnector

    names = dict(SITES)
    with (tmp_path / "appointments.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["practitioner_id", "practitioner_email", "patient_id", "date", "status", "site"])
        for visit in visits(TODAY):
            handle_ = PEOPLE[visit.person][0]
            status = "cancelled" if visit.cancelled else "booked"
            row = [handle_, f"{handle_}@{EMAIL_DOMAIN}", visit.patient, visit.starts.date().isoformat()]
            writer.writerow([*row, status, names[visit.site]])
    mapping = tmp_path / "group.toml"
    mapping.write_text(
        '[columns]\npractitioner_id = "practitioner_id"\npractitioner_email = "practitioner_email"\n'
        'patient_id = "patient_id"\ndate = "date"\nstatus = "status"\nlocation = "site"\n'
        '[status]\nactive = ["booked"]\ncancelled = ["cancelled"]\n'
    )
    connector = ExportConnector(tmp_path / "appointments.csv", str(mapping))
    yield Case(connector, tuple(names.values()), False)


CONNECTORS: dict[str, Callable[[Path], object]] = {
    "cliniko": cliniko,
    "fhir": fhir,
    "halaxy": halaxy,
    "nookal": nookal,
    "semble": semble,
    "export": export,
}


def _handle(email: str | None) -> str:
    return (email or "").split("@")[0]


@pytest.fixture(params=sorted(CONNECTORS))
def case(request, tmp_path) -> Iterator[Case]:
    with CONNECTORS[request.param](tmp_path) as built:
        yield built


def _read(case: Case) -> PmsSnapshot:
    return case.connector.pull(window_start=WINDOW, cursors={}).snapshot


def test_each_connector_reads_the_groups_three_sites_and_where_each_appointment_was(case):
    """Given the group on the connector's emulator / When read with locations / Then the three sites
    are listed, every appointment row is at one of them, and each site's rows are its staff's."""
    snapshot = _read(case)
    assert {location.id for location in snapshot.locations} >= set(case.site_ids)
    staff = {site: {handle for handle, _, sites in PEOPLE if site in sites} for site, _ in SITES}
    by_id = {p.id: _handle(p.email) for p in snapshot.practitioners}
    for row in snapshot.access:
        assert row.location in case.site_ids
        site = SITES[case.site_ids.index(row.location)][0]
        assert by_id[row.practitioner_id] in staff[site]


def test_each_connectors_location_filter_keeps_one_sites_people_and_rows(case):
    """Given the group / When scoped to North / Then Ana, Ben and Gus (Ben and Gus also work at
    another site), with only North's rows; South is Ben, Cara and Dev."""
    snapshot = _read(case)
    north = apply_scope(snapshot, Scope(locations=(case.site_ids[0],)), WINDOW)
    assert {_handle(p.email) for p in north.practitioners} == {"ana", "ben", "gus"}
    assert {row.location for row in north.access} == {case.site_ids[0]}
    south = apply_scope(snapshot, Scope(locations=(case.site_ids[1],)), WINDOW)
    assert {_handle(p.email) for p in south.practitioners} == {"ben", "cara", "dev"}


@pytest.fixture(params=["cliniko", "fhir", "halaxy", "nookal"])
def linked_case(request, tmp_path) -> Iterator[Case]:
    """The vendors that list who works where (Semble and exports: belonging comes from bookings)."""
    with CONNECTORS[request.param](tmp_path) as built:
        assert built.links
        yield built


def test_each_connector_lists_who_works_where_when_the_vendor_says(linked_case):
    """Given a vendor that links practitioners to sites / When read / Then Ben works at North and
    South and Gus at North and East."""
    case = linked_case
    where = {_handle(p.email): p.locations for p in _read(case).practitioners}
    north, south, east = case.site_ids
    assert set(where["ben"]) == {north, south}
    assert set(where["gus"]) == {north, east}
    # `org locations` and the scope check at `org add` read this without any appointment
    directory = case.connector.directory(window_start=WINDOW)
    assert {_handle(p.email): p.locations for p in directory.practitioners} == where
    assert len(directory.access) == 0 and {loc.id for loc in directory.locations} >= set(case.site_ids)


def test_a_scope_naming_a_site_the_vendor_does_not_have_is_an_error(case):
    """Given the group / When scoped to a site that does not exist / Then a ScopeError names it."""
    with pytest.raises(ScopeError, match="no-such-site is not in"):
        apply_scope(_read(case), Scope(locations=("no-such-site",)), WINDOW)


def test_without_a_location_scope_no_connector_reads_locations():
    """Given a connector built without read_locations / Then its read has no locations (None), so
    an organisation without --locations sends no extra requests."""
    from connectors.emulators.nookal import NookalEmulator, generate_group
    from connectors.nookal import NookalConnector

    with NookalEmulator(generate_group(TODAY), "nookal-key") as emulator:
        connector = NookalConnector("nookal-key", base_url=emulator.base_url, user_agent=AGENT)
        assert connector.pull(window_start=WINDOW, cursors={}).snapshot.locations is None
        assert not any(request.path.endswith("getLocations") for request in emulator.log)


def test_semble_reads_the_window_again_when_locations_are_first_asked_for():
    """Given a Semble state stored without locations (the organisation had no --locations) / When
    the next pull reads locations / Then it reads the window again, so every booking has its
    location (an incremental read would leave the old bookings at no location, a false drop)."""
    from datetime import UTC, datetime

    from connectors.emulators.semble import SembleEmulator, generate_group
    from connectors.semble import SembleConnector

    with SembleEmulator(generate_group(TODAY), "semble-token", requests_per_window=10_000) as emulator:
        plain = SembleConnector("semble-token", url=emulator.graphql_url, user_agent=AGENT)
        first = plain.pull(window_start=WINDOW, cursors={}, started_at=datetime.now(UTC))
        located = SembleConnector(
            "semble-token", url=emulator.graphql_url, user_agent=AGENT, read_locations=True
        )
        second = located.pull(window_start=WINDOW, cursors=first.cursors, state=first.state)
    assert {row.location for row in first.snapshot.access} == {None}
    assert None not in {row.location for row in second.snapshot.access}
    assert second.state["located"] is True


def test_each_connectors_read_survives_the_shared_copy_unchanged(case, runtime):
    """Given a read of the group by each connector / When stored as a shared read and read back
    (compressed, encrypted) / Then practitioners, locations, access rows, completeness, cursors
    and connector state are all the same: any organisation on the key may use it."""
    from worker.services.shared_pull import _decode, _encode

    pulled = case.connector.pull(window_start=WINDOW, cursors={})
    copy = _decode(runtime, _encode(runtime, pulled))
    assert copy.snapshot.practitioners == pulled.snapshot.practitioners
    assert copy.snapshot.locations == pulled.snapshot.locations
    assert copy.snapshot.access == pulled.snapshot.access and len(copy.snapshot.access) > 0
    assert copy.snapshot.complete is pulled.snapshot.complete
    assert copy.cursors == pulled.cursors
    assert json.loads(json.dumps(pulled.state)) == copy.state
