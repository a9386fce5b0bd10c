"""Which PMS account (connection) an organisation reads, as a hash: same key, same account.

Organisations on one account (a clinic group: one organisation per PT Direct account, one PMS
key) can share one read of it (services/shared_pull.py). The hash is stored on the organisation
(`pms_account`, indexed) so a run finds its siblings with one query; it is a SHA-256 of the
connection settings and the decrypted key, so the key itself never rests in clear text.
"""

from __future__ import annotations

import hashlib
from typing import Any

from worker.store.models import Organisation


def account_key(org: Organisation, secrets: Any) -> str:
    """Which PMS account (connection) an organisation reads: same key, same account."""
    secret = secrets.decrypt(org.pms_key_encrypted).decode() if org.pms_key_encrypted else ""
    parts = [
        org.pms_kind,
        org.pms_url or "",
        org.pms_path or "",
        org.pms_format or "",
        org.pms_staff_path or "",
    ]
    return hashlib.sha256("\n".join([*parts, secret]).encode()).hexdigest()


def fingerprint(org: Organisation, secrets: Any) -> None:
    """Store which PMS account `org` reads (at `org add` and `org update`; each run refreshes it)."""
    org.pms_account = account_key(org, secrets)
