"""Builds an organisation's PMS connector and PT Direct adapter from its stored settings."""

from __future__ import annotations

from connectors.base import PmsConnector, PtDirectAdapter
from connectors.csv_pms import CsvPmsConnector
from connectors.ptdirect_file import PtDirectFileAdapter
from worker.crypto import SecretBox
from worker.errors import ConfigurationError
from worker.store.models import Organisation

PMS_KINDS = ("cliniko", "fhir", "csv")
PTDIRECT_KINDS = ("file", "api")
AVAILABLE_PMS = ("csv",)
AVAILABLE_PTDIRECT = ("file",)


def pms_connector(org: Organisation, secrets: SecretBox) -> PmsConnector:
    if org.pms_kind == "csv":
        if not org.pms_path:
            raise ConfigurationError(f"organisation {org.slug}: the csv connector needs --pms-path")
        return CsvPmsConnector(org.pms_path)
    raise ConfigurationError(
        f"organisation {org.slug}: the {org.pms_kind} connector is not available in this version "
        f"(available: {', '.join(AVAILABLE_PMS)})"
    )


def ptdirect_adapter(org: Organisation, secrets: SecretBox) -> PtDirectAdapter:
    if org.ptdirect_kind == "file":
        if not org.ptdirect_path:
            raise ConfigurationError(f"organisation {org.slug}: the file adapter needs --ptdirect-path")
        return PtDirectFileAdapter(org.ptdirect_path)
    raise ConfigurationError(
        f"organisation {org.slug}: the PT Direct {org.ptdirect_kind} adapter is not available in "
        f"this version (available: {', '.join(AVAILABLE_PTDIRECT)})"
    )
