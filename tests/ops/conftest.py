"""Fixtures for operating ptsync: a real SMTP server, a local webhook receiver, a clinic, a worker."""

from __future__ import annotations

import json
import socket
import threading
from dataclasses import dataclass, field
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dramatiq
import pytest

from connectors.emulators.cliniko import ClinikoEmulator, generate_account
from connectors.emulators.sample import linked_ptdirect
from tests.clinic_files import write_clinic
from worker import actors
from worker.services.orgs import NewOrganisation, add_organisation

SLUG = "clinic-a"
KEY = "emulated-cliniko-key-au1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Mailbox:
    messages: list = field(default_factory=list)

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(envelope)
        return "250 OK"


@pytest.fixture
def smtp_server(runtime, monkeypatch):
    """A real SMTP server (aiosmtpd) on localhost; ptsync's SMTP settings point at it."""
    from aiosmtpd.controller import Controller

    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setattr(runtime.settings, "smtp_host", "127.0.0.1")
    monkeypatch.setattr(runtime.settings, "smtp_port", port)
    monkeypatch.setattr(runtime.settings, "smtp_security", "none")
    monkeypatch.setattr(runtime.settings, "smtp_from", "ptsync@ops.example")
    yield mailbox
    controller.stop()


@dataclass
class Receiver:
    url: str
    requests: list = field(default_factory=list)
    status: int = 204


@pytest.fixture
def receiver():
    """A local HTTP endpoint that records what it is sent (and answers `status`)."""
    port = free_port()
    state = Receiver(f"http://127.0.0.1:{port}/hooks/ptsync")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            state.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(state.status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def clinic(runtime, tmp_path):
    """Ana and Ben share patients; Cara co-treats with Ana but is not in sharing (two findings)."""
    pms, ptdirect = write_clinic(tmp_path / SLUG)
    add_organisation(
        runtime,
        NewOrganisation(
            slug=SLUG, pms="csv", pms_path=str(pms), ptdirect="file", ptdirect_path=str(ptdirect)
        ),
    )
    return ptdirect


@pytest.fixture
def worker_thread(runtime):
    """A real dramatiq worker on the in-process broker: the same actors as production."""
    broker = actors.broker
    broker.flush_all()
    worker = dramatiq.Worker(broker, worker_timeout=50, worker_threads=2)
    worker.start()
    yield broker
    worker.stop()
    broker.flush_all()


def sync_and_settle(broker, slug: str = SLUG) -> None:
    """Request a sync through the actors and wait until it and its notifications are done."""
    actors.request_sync.send(slug, "manual")
    broker.join("default", fail_fast=True, timeout=30_000)


def payload_of(body: bytes) -> dict:
    return json.loads(body)


@pytest.fixture
def cliniko_clinic(cliniko_emulator):
    """A clinic on the Cliniko emulator (real HTTP), its PT Direct as a snapshot file: its data."""
    return cliniko_emulator.data


@pytest.fixture
def cliniko_emulator(runtime, tmp_path, monkeypatch):
    """The Cliniko emulator serving organisation `clinic-c` (PT Direct as a snapshot file)."""
    monkeypatch.setattr(runtime.settings, "cliniko_requests_per_minute", 60_000)
    data = generate_account(patients=40, practitioners=4, appointments=120, today=date.today())
    snapshot = tmp_path / "ptdirect.json"
    linked_ptdirect(snapshot, "cliniko", [p["id"] for p in data["practitioners"]])
    with ClinikoEmulator(data, KEY, requests_per_window=10_000) as emulator:
        add_organisation(
            runtime,
            NewOrganisation(
                slug="clinic-c",
                pms="cliniko",
                pms_url=emulator.base_url,
                pms_key=KEY,
                ptdirect="file",
                ptdirect_path=str(snapshot),
            ),
        )
        yield emulator
