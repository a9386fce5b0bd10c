"""Re-encrypting every stored secret with the newest `PTSYNC_SECRET_KEY`, so an old key can
be removed from the list after a rotation without re-entering any credential."""

from __future__ import annotations

from sqlalchemy import select

from worker.clock import utcnow
from worker.runtime import Runtime
from worker.store import repositories as repo
from worker.store.models import Organisation, PhysitrackKey, PmsState

_ORG_SECRETS = (
    "pms_key_encrypted",
    "ptdirect_key_encrypted",
    "pseudonym_key_encrypted",
    "webhook_secret_encrypted",
)


def reencrypt_secrets(runtime: Runtime, actor: str = "cli") -> int:
    """Rotate every stored secret to the newest key (one transaction); returns how many."""
    box = runtime.secrets
    count = 0
    now = utcnow()
    with runtime.db.transaction() as session:
        for org in session.scalars(select(Organisation)):
            for column in _ORG_SECRETS:
                value = getattr(org, column)
                if value:
                    setattr(org, column, box.rotate(value))
                    count += 1
        for key in session.scalars(select(PhysitrackKey)):
            key.key_encrypted = box.rotate(key.key_encrypted)
            count += 1
        for row in session.scalars(select(PmsState)):
            state = repo.pms_state_of(session, row.org_id, box)
            if state is not None:
                repo.store_pms_state(session, row.org_id, state, row.updated_at, box)
                count += 1
        repo.audit(session, None, actor, "secrets_reencrypted", now, count=count)
    return count
