"""The relay (worker/services/deliveries.py) takes its row locks in one order, on a real PostgreSQL.

For a while, on PostgreSQL, "mark the run sent" and "mark the deliveries relayed" were one
statement: the deliveries' UPDATE with the run's UPDATE as a data-modifying WITH that nothing
references. PostgreSQL runs such a WITH after the main statement (ExecPostprocessPlan), so that
statement locked the deliveries first and the run second, while every other relay transaction
locks the run first: joining the queued run (`repo._join`) and then, when that run's message
already went out, marking its deliveries relayed (`_mark_relayed`). Now both are two statements,
run first.

Scenario (a burst of webhooks: each one's background relay, plus the relay thread):
relay A joined the queued run while its message was not yet out, sends it, and marks it sent
and its webhooks relayed; relay X did the same a moment earlier and committed, so relay C,
handling another webhook of the burst, joins the run (locks it), finds its message out, and
marks the waiting webhooks relayed, the ones A's statement has just locked. A waits for the
run C holds, C for the deliveries A holds: PostgreSQL aborts one with a deadlock.
"""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import select, update

from worker.clock import new_id, utcnow
from worker.services import deliveries
from worker.store import repositories as repo
from worker.store.models import Delivery, Organisation, Run


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_given_a_burst_for_one_queued_run_when_one_relay_marks_it_sent_while_another_joins_it_then_neither_deadlocks_on_postgresql(
    store,
    org,
    monkeypatch,
):
    # Given an organisation whose webhooks go straight to a run, its queued run (message not
    # yet out), and two webhooks of a burst
    with store.db.transaction() as session:
        session.execute(update(Organisation).values(webhook_min_interval_seconds=0))
        run_id = new_id()
        session.add(
            Run(id=run_id, org_id=org.id, trigger="generic:x", status=repo.QUEUED, requested_at=utcnow())
        )
    first = deliveries.accept(store, org.id, "generic", "evt-a", "appointment.updated", b"{}").delivery
    second = deliveries.accept(store, org.id, "generic", "evt-b", "appointment.updated", b"{}").delivery

    a_sent, c_holds_the_run = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def send_then_let_c_go_first(sent_run: str) -> None:
        assert sent_run == run_id
        a_sent.set()
        assert c_holds_the_run.wait(10)

    def relay_a() -> None:
        try:
            deliveries.relay(store, send_then_let_c_go_first, only=first)
        except BaseException as exc:
            errors.append(exc)

    a = threading.Thread(target=relay_a)
    a.start()
    assert a_sent.wait(10)
    # Relay X (the same path as A, a moment earlier) has marked the run's message out
    with store.db.transaction() as session:
        session.execute(update(Run).where(Run.id == run_id).values(enqueued_at=utcnow()))

    real_mark_relayed = deliveries._mark_relayed

    def c_marks_after_a_has_gone_on(session, covered, marked_run, now):
        # C has joined the run (its row is C's now); A goes on to its closing statement
        c_holds_the_run.set()
        time.sleep(0.5)
        return real_mark_relayed(session, covered, marked_run, now)

    monkeypatch.setattr(deliveries, "_mark_relayed", c_marks_after_a_has_gone_on)
    # When relay C handles the second webhook
    try:
        deliveries.relay(store, lambda _run: None, only=second)
    except BaseException as exc:
        errors.append(exc)
    c_holds_the_run.set()
    a.join(15)

    # Then neither relay failed, and both webhooks are relayed to the run
    assert not errors, [f"{type(e).__name__}: {str(e).splitlines()[0]}" for e in errors]
    with store.db.transaction() as session:
        rows = session.execute(select(Delivery.status, Delivery.run_id).order_by(Delivery.id)).all()
    assert [tuple(row) for row in rows] == [("relayed", run_id), ("relayed", run_id)]
