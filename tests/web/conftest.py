"""Fixtures for the HTTP app: an organisation with webhook credentials and admin tokens."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.clinic_files import write_clinic
from worker.services.credentials import create_admin_token, rotate_webhook_credentials
from worker.services.orgs import NewOrganisation, add_organisation
from worker.web import create_app


class SentRuns(list):
    """A fake broker `send`: records the run ids it was asked to enqueue."""

    def __call__(self, run_id: str) -> None:
        self.append(run_id)


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
