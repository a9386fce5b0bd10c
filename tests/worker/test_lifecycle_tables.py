"""The lifecycle tables: legal moves pass, illegal ones raise, and retry state is data."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from worker.lifecycle import (
    PROPOSAL_MOVES,
    RUN_MOVES,
    IllegalTransition,
    OperationStatus,
    ProposalStatus,
    RunStatus,
    check,
    failed_attempt,
    sources,
)


def test_a_finished_run_cannot_be_started_again() -> None:
    """Given a succeeded run, when it would move to running, then the table refuses it."""
    with pytest.raises(IllegalTransition, match="succeeded -> running"):
        check(RUN_MOVES, "succeeded", RunStatus.RUNNING)


def test_a_proposal_being_applied_cannot_be_rejected() -> None:
    """Given an applying proposal, when rejected, then the move is illegal (its lease holder decides)."""
    with pytest.raises(IllegalTransition):
        check(PROPOSAL_MOVES, "applying", ProposalStatus.REJECTED)
    check(PROPOSAL_MOVES, "proposed", ProposalStatus.REJECTED)


def test_the_sources_of_a_move_are_the_compare_and_set_states() -> None:
    """Given the run table, when asking where `failed` may come from, then queued and running."""
    assert sources(RUN_MOVES, RunStatus.FAILED) == ("queued", "running")


@pytest.mark.parametrize(
    ("status", "error", "expected"),
    [
        ("running", "cliniko: 503 Service Unavailable", "cliniko: 503 Service Unavailable"),
        ("queued", "cliniko: timed out", "cliniko: timed out"),
        ("running", None, None),
        ("failed", "gave up after retries: cliniko: timed out", None),
        ("succeeded", None, None),
    ],
)
def test_only_an_unfinished_run_has_a_failed_attempt(status: str, error: str | None, expected) -> None:
    """Given a run's status and error, when reading its retry state, then only unfinished runs retry."""
    assert failed_attempt(SimpleNamespace(status=status, error=error)) == expected


def test_every_status_has_a_row_in_its_table() -> None:
    """Given the enums, when compared with the tables, then no state is missing a row."""
    from worker.lifecycle import OPERATION_MOVES

    assert set(RUN_MOVES) == set(RunStatus)
    assert set(PROPOSAL_MOVES) == set(ProposalStatus)
    assert set(OPERATION_MOVES) == set(OperationStatus)


def test_the_architecture_page_shows_the_lifecycles_as_the_tables_define_them() -> None:
    """Given docs/architecture.md, when the tables are rendered as diagrams, then each is on the page."""
    from pathlib import Path

    from worker.lifecycle import OPERATION_MOVES, diagram

    page = (Path(__file__).resolve().parents[2] / "docs" / "architecture.md").read_text()
    for moves in (RUN_MOVES, PROPOSAL_MOVES, OPERATION_MOVES):
        assert f"```mermaid\n{diagram(moves)}\n```" in page
