"""`ptsync org tokens SLUG` and `ptsync org revoke-token SLUG TOKEN_ID`: admin token hygiene.

Listing shows what is known about each token (never the token: only its hash is stored);
revoking stops it at once and ends the browser sessions opened with it.
"""

from __future__ import annotations

from typing import Annotated

import typer

from worker.clock import utcnow
from worker.terminal import InertTable, safe


def _when(value) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value is not None else "-"


def register(org_app: typer.Typer) -> None:
    """Add the token commands to the `ptsync org` group."""

    @org_app.command("tokens")
    def org_tokens(slug: str) -> None:
        """List an organisation's admin tokens: id, label, created, last used, expires, state."""
        from worker.cli import _runtime, err, out
        from worker.services.credentials import list_admin_tokens

        tokens = list_admin_tokens(_runtime(), slug)
        if not tokens:
            err.print(f"{slug} has no admin tokens (create one: ptsync org token {slug})")
            return
        now = utcnow()
        table = InertTable("id", "label", "created", "last used", "expires", "state")
        for token in tokens:
            table.add_row(
                str(token.id),
                token.label,
                _when(token.created_at),
                _when(token.last_used_at),
                _when(token.expires_at) if token.expires_at else "never",
                token.state(now),
            )
        out.print(table)

    @org_app.command("revoke-token")
    def org_revoke_token(
        slug: str, token_id: Annotated[int, typer.Argument(help="The id shown by `ptsync org tokens`")]
    ) -> None:
        """Revoke an admin token now; its browser sessions end too."""
        from worker.cli import _runtime, err
        from worker.services.credentials import revoke_admin_token

        token = revoke_admin_token(_runtime(), slug, token_id)
        err.print(f"revoked admin token {token.id} ({safe(token.label)}) of {slug}; its sessions are ended")
