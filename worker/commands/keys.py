"""`ptsync rotate-secrets`: the last step of a PTSYNC_SECRET_KEY rotation."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("rotate-secrets")
    def rotate_secrets() -> None:
        """Re-encrypt every stored secret with the first key of PTSYNC_SECRET_KEY.

        Rotation: set PTSYNC_SECRET_KEY=NEW,OLD on every process, run this once, then drop OLD.
        """
        from worker.cli import _runtime, err
        from worker.services.keys import reencrypt_secrets

        count = reencrypt_secrets(_runtime())
        err.print(f"re-encrypted {count} stored secrets with the newest key; the old key can now be removed")
