"""Fixtures for the HTTP app: an organisation with webhook credentials and admin tokens."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
import uvicorn
from fastapi.testclient import TestClient
from standardwebhooks.webhooks import Webhook

from tests.clinic_files import write_clinic
from worker.services.credentials import create_admin_token, rotate_webhook_credentials
from worker.services.orgs import NewOrganisation, add_organisation
from worker.web import create_app


class SentRuns(list):
    """A fake broker `send`: records the run ids it was asked to enqueue."""

    def __call__(self, run_id: str) -> None:
        self.append(run_id)


def signed_headers(
    secret: str, body: bytes, msg_id: str = "msg_1", timestamp: float | None = None
) -> dict[str, str]:
    """Standard Webhooks headers signing `body` with `secret` (now, or at `timestamp`)."""
    when = datetime.fromtimestamp(int(time.time() if timestamp is None else timestamp), tz=UTC)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, when, body.decode()),
        "Content-Type": "application/json",
    }


def add_clinic(runtime, tmp_path, slug: str):
    folder = tmp_path / slug
    pms, ptdirect = write_clinic(folder)
    add_organisation(
        runtime,
        NewOrganisation(
            slug=slug, pms="csv", pms_path=str(pms), ptdirect="file", ptdirect_path=str(ptdirect)
        ),
    )
    return rotate_webhook_credentials(runtime, slug), create_admin_token(runtime, slug, "test")


@pytest.fixture
def sent():
    return SentRuns()


@pytest.fixture
def clinic(runtime, tmp_path):
    credentials, token = add_clinic(runtime, tmp_path, "clinic-a")
    return credentials, token


@pytest.fixture
def client(runtime, sent):
    with TestClient(create_app(send=sent, background=False)) as test_client:
        yield test_client


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@contextmanager
def chromium() -> Iterator:
    """Debian's Chromium through Playwright; skipped locally (failed under CI) when missing."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("Chromium is missing (apt-get install chromium)")
        pytest.skip("Chromium is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            instance.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def server(runtime):
    """The real app under uvicorn on a free port, with its in-process queue worker."""
    port = _free_port()
    config = uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_level="warning")
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not instance.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    instance.should_exit = True
    thread.join(timeout=10)
