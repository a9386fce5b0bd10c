"""The outbox survives a broker outage; schedules never double a run; one clock leads."""

from __future__ import annotations

from datetime import UTC, datetime

import dramatiq
import pytest
from dramatiq.brokers.redis import RedisBroker
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from tests.clinic_files import full_sync_far_from_now
from worker import actors
from worker.scheduler import Leadership
from worker.services.deliveries import relay_quietly
from worker.services.schedule import latest_due, record_due_syncs
from worker.store.models import Delivery, Organisation, Run
from worker.web import create_app


def _send_through_unreachable_redis():
    """A real Redis broker pointed at a port where nothing listens: every send fails."""
    broker = RedisBroker(url="redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    actor = dramatiq.actor(lambda run_id: None, actor_name="ptsync.sync_org", broker=broker)
    return actor.send


def test_a_webhook_accepted_while_redis_is_down_is_synced_once_it_is_back(runtime, clinic):
    # Given the broker is unreachable when a webhook arrives
    credentials, _ = clinic
    with TestClient(create_app(send=_send_through_unreachable_redis(), background=False)) as client:
        response = client.post(
            f"/webhooks/physitrack/{credentials.url_token}",
            json={"id": "evt-1", "event": "new_client_created"},
        )
    # Then the webhook is still acknowledged, because it is committed, and waits in the outbox
    assert response.status_code == 200
    with runtime.db.transaction() as session:
        assert session.scalar(select(Delivery.status)) == "pending"
    # When the broker is back and the relay runs (as the web and clock processes do every second)
    actors.broker.flush_all()
    worker = dramatiq.Worker(actors.broker, worker_timeout=50)
    worker.start()
    try:
        assert relay_quietly(runtime, actors.sync_org.send) == 1
        actors.broker.join("default", fail_fast=False, timeout=30_000)
    finally:
        worker.stop()
    # Then the run happens, once
    with runtime.db.transaction() as session:
        assert [run.status for run in session.scalars(select(Run))] == ["succeeded"]
        assert session.scalar(select(Delivery.status)) == "relayed"


def test_the_latest_due_time_is_found_within_the_catch_up_window():
    now = datetime(2026, 11, 25, 10, 7, 30, tzinfo=UTC)
    assert latest_due("0 * * * *", now) == datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    assert latest_due("*/5 * * * *", now) == datetime(2026, 11, 25, 10, 5, tzinfo=UTC)
    assert latest_due("0 3 * * *", now) is None


def test_a_duplicate_tick_or_a_second_clock_never_causes_a_second_run(runtime, clinic, sent):
    now = datetime.now(UTC)
    with runtime.db.transaction() as session:
        session.execute(update(Organisation).values(schedule="* * * * *", full_sync=full_sync_far_from_now()))
    first = record_due_syncs(runtime, now)
    second = record_due_syncs(runtime, now)  # the same tick again, or another clock process
    relay_quietly(runtime, sent)
    relay_quietly(runtime, sent)
    assert len(first) == 1 and second == []
    with runtime.db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(Run)) == 1


def test_only_one_clock_process_leads_at_a_time(redis_url, monkeypatch):
    import redis

    client = redis.Redis.from_url(redis_url)
    client.delete("ptsync:clock:leader")
    first, second = Leadership(redis_url), Leadership(redis_url)
    assert first.hold() is True
    assert second.hold() is False
    assert first.hold() is True  # renewing keeps the lead
    first.release()
    assert second.hold() is True


@pytest.fixture
def sent():
    from tests.web.conftest import SentRuns

    return SentRuns()


def test_org_add_refuses_an_invalid_schedule(runtime, tmp_path):
    from tests.clinic_files import write_clinic
    from worker.errors import InvalidInput
    from worker.services.orgs import NewOrganisation, add_organisation

    pms, ptdirect = write_clinic(tmp_path)
    with pytest.raises(InvalidInput, match="not a valid cron expression"):
        add_organisation(
            runtime,
            NewOrganisation(
                slug="c",
                pms="csv",
                pms_path=str(pms),
                ptdirect="file",
                ptdirect_path=str(ptdirect),
                schedule="99 * * * *",
            ),
        )
