"""What the org page shows, without a browser: grouping, links to fixes, times, the picture."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from sharing.picture import PairKind, PicturePair, PicturePractitioner, PractitionerState, SharingPicture
from worker.picture import picture_document, render_picture
from worker.web.org_view import group_findings
from worker.web.timefmt import local, org_zone, relative

ANA = {"pms_id": "1", "email": "ana@clinic.example", "name": "Ana Silva"}
CARA = {"pms_id": "3", "email": "Cara@Clinic.example", "name": "Cara Lim"}
OPERATIONS = [
    {
        "anchor": "op-a-0",
        "op": "add_sharing_member",
        "label": "add sharing member",
        "email": "cara@clinic.example",
    },
    {
        "anchor": "op-a-1",
        "op": "enable_patient_sharing",
        "label": "enable patient sharing",
        "email": "ben@clinic.example",
    },
    {
        "anchor": "op-a-2",
        "op": "add_master_recipient",
        "label": "add master recipient",
        "email": "cara@clinic.example",
    },
]


def _finding(kind: str, severity: str, people: list[dict], evidence: dict, state: str = "new") -> dict:
    return {
        "kind": kind,
        "severity": severity,
        "state": state,
        "message": f"{kind} of {people[0]['name']}",
        "practitioners": people,
        "evidence": evidence,
        "fingerprint": kind + people[0]["pms_id"],
    }


def test_a_per_pair_risk_links_to_the_operations_of_whoever_does_not_share():
    # Given today's per-pair finding: Ana and Cara, of whom Cara does not share patients
    finding = _finding(
        "duplicate_patient_risk", "high", [ANA, CARA], {"not_sharing_patients": ["Cara@Clinic.example"]}
    )
    # When grouped with the open proposal's operations
    (severity,) = group_findings([finding], OPERATIONS, None)
    # Then it links to Cara's sharing operation only (the master recipient fixes another finding)
    assert [op["anchor"] for op in severity.kinds[0].findings[0]["fixes"]] == ["op-a-0"]


def test_a_grouped_risk_links_to_the_operations_of_its_first_practitioner():
    # Given the grouped shape: one finding for Cara, who must change, naming Ana as a colleague
    pairs = [
        {
            "emails": ["Cara@Clinic.example", "ana@clinic.example"],
            "shared_patients": 3,
            "last_shared_on": "2026-11-20",
        }
    ]
    finding = _finding("duplicate_patient_risk", "high", [CARA, ANA], {"pairs": pairs})
    # When grouped
    (severity,) = group_findings([finding], OPERATIONS, None)
    # Then it links to Cara's operation
    assert [op["anchor"] for op in severity.kinds[0].findings[0]["fixes"]] == ["op-a-0"]


def test_findings_are_grouped_by_severity_then_kind_and_filtered_by_practitioner():
    # Given findings of two severities and kinds
    findings = [
        _finding("pending_invitation", "low", [CARA], {}),
        _finding("missing_new_user", "medium", [CARA], {}, state="ongoing"),
        _finding("missing_new_user", "medium", [ANA], {}),
    ]
    # When grouped, then filtered by "ana"
    groups = group_findings(findings, OPERATIONS, None)
    filtered = group_findings(findings, OPERATIONS, "ANA SIL")
    # Then severities come highest first, new findings first within a kind, and the filter keeps Ana's
    assert [(g.severity, [(k.kind, len(k.findings), k.new) for k in g.kinds]) for g in groups] == [
        ("medium", [("missing_new_user", 2, 1)]),
        ("low", [("pending_invitation", 1, 1)]),
    ]
    assert groups[0].kinds[0].findings[0]["state"] == "new"
    assert [(g.severity, g.count) for g in filtered] == [("medium", 1)]


def test_times_read_in_the_organisations_zone_and_relative_to_now():
    # Given an organisation in Sydney, and one whose zone is unknown
    now = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    sydney = org_zone(SimpleNamespace(timezone="Australia/Sydney"))
    # Then times are local with the zone's abbreviation, relative both ways, and bad zones fall back to UTC
    assert local(now, sydney) == "25 Nov 2026, 21:00 AEDT"
    assert relative(now - timedelta(hours=3), now) == "3 hours ago"
    assert relative(now + timedelta(minutes=12), now) == "in 12 min"
    assert relative(now - timedelta(seconds=10), now) == "just now"
    assert relative(now - timedelta(days=1), now) == "1 day ago"
    assert org_zone(SimpleNamespace(timezone="Mars/Olympus")).key == "UTC"
    assert org_zone(SimpleNamespace(timezone="")).key == "UTC"


def _picture(count: int) -> SharingPicture:
    states = list(PractitionerState)
    people = tuple(
        PicturePractitioner(str(i), f"Practitioner {i:03}", f"p{i}@clinic.example", states[i % len(states)])
        for i in range(count)
    )
    kinds = list(PairKind)
    pairs = tuple(PicturePair(str(i), str(i + 1), 1 + i % 9, kinds[i % 3]) for i in range(count - 1))
    return SharingPicture(people, pairs)


def test_up_to_fifteen_practitioners_are_drawn_as_a_node_link_picture_and_more_as_a_matrix():
    # When pictures of 15 and 16 practitioners are rendered
    small = str(render_picture(picture_document(_picture(15))))
    large = str(render_picture(picture_document(_picture(16))))
    # Then the first has lines (at-risk ones dashed) and labels; the second a cell pair per pair
    assert 'class="picture node-link"' in small and small.count('<line class="pair') == 14
    assert small.count('stroke-dasharray="7 4"') == 5 + 1  # 5 at-risk lines and the legend's sample
    assert 'class="picture matrix"' in large and large.count('<path class="cell') == 15


def test_the_legend_counts_every_state_and_pair_kind():
    # When a picture of 16 practitioners is rendered
    html = str(render_picture(picture_document(_picture(16))))
    # Then each state and pair kind is listed with how many there are
    assert '<li data-kind="at_risk">' in html and "(5)</span>" in html
    for state in PractitionerState:
        assert f'data-state="{state.value}"' in html


def test_an_old_run_without_states_draws_no_picture():
    # Given a picture stored by an older version (nodes and edges, no states)
    old = {"nodes": [["1", "Ana"]], "edges": [["1", "2", 3, True]], "total_pairs": 1}
    # Then nothing is drawn rather than a legend that would not be true
    assert render_picture(old) is None
