"""The options of `org add` and `org update`: one per field of `NewOrganisation`, worded once.

Both commands are built from the same table, so a setting added to `NewOrganisation` appears on
both with the same help. `org add` takes each field's default from the dataclass; `org update`
defaults every option to None ("leave as it is").

The fields are read from the source of worker/services/orgs.py, not imported: building the CLI
must stay quick (`--help`, `--version`), and importing the service would load every connector.
A test checks that they are exactly the dataclass's fields.
"""

from __future__ import annotations

import ast
import inspect
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

import typer

from worker.commands.terminal import SECRET_HELP

ORG_OPTION_HELP = {
    "pms": "cliniko, fhir, halaxy, nookal, semble, export or csv",
    "ptdirect": "manual (ptsync keeps PT Direct's state, recorded by you), file or api",
    "pms_url": "override the connector's base URL",
    "pms_key": f"PMS API key; for --pms semble its API token (stored encrypted; {SECRET_HELP})",
    "pms_path": "CSV folder for --pms csv; export file or folder for --pms export",
    "pms_client_id": "Halaxy API client id (--pms halaxy)",
    "pms_client_secret": "Halaxy API client secret (stored encrypted)",
    "pms_token_url": "Halaxy token endpoint (default: oauth/token under --pms-url)",
    "ptdirect_path": "snapshot file for --ptdirect file",
    "ptdirect_url": "admin bridge URL for --ptdirect api",
    "ptdirect_key": f"admin bridge key (stored encrypted; {SECRET_HELP})",
    "policy": "observe, propose or apply-safe",
    "schedule": "cron expression (UTC) of the incremental poll: only what changed since the last run",
    "full_sync": "cron expression (UTC) of the full sync that re-reads everything (default nightly)",
    "physitrack_region": "us, uk, ca or au (API v2 client lists)",
    "physitrack_url": "override the Physitrack API v2 base URL",
    "sharing_scope": "co-treating (only those who share patients) or everyone",
    "master_recipients": "all-active (every active practitioner) or manual (left as they are)",
    "lookback_days": "how far back shared patients count",
    "removal_threshold": "a read losing more than this % of active practitioners proposes no removals",
    "removal_threshold_people": "...and more than this many people (both must be exceeded)",
    "timezone": "IANA time zone for dates, e.g. Europe/London",
    "pms_format": "--pms export: a preset (generic, mirah) or a mapping .toml file",
    "pms_staff": "--pms export: optional staff list CSV (id,name,email,active)",
    "allow_insecure_http": "accept plain http:// URLs to hosts other than this machine",
    "webhook_min_interval": "seconds between webhook-triggered syncs (events wait, then join one)",
    "locations": "clinic groups: only these PMS locations, comma-separated ids (`org locations`; '' for all)",
    "include_people": "clinic groups: also these PMS practitioners, ids or emails, comma-separated",
    "exclude_people": "clinic groups: never these PMS practitioners, ids or emails, comma-separated",
}
SECRET_FIELDS = ("pms_key", "pms_client_secret", "ptdirect_key")
"""Options that take a secret: each also takes `-` (prompt or standard input) or `env:NAME`.
`worker.services.orgs.SECRET_SETTINGS`, written out here so the CLI does not import the service."""
ADD_DEFAULTS = {"ptdirect": "manual"}
"""Defaults of `org add` that differ from the dataclass (which has none for these)."""

_TYPES = {"int": int, "float": float, "bool": bool}
_REQUIRED = inspect.Parameter.empty


@dataclass(frozen=True)
class OrgField:
    name: str
    kind: type
    default: Any  # inspect.Parameter.empty when the dataclass field has no default


def _type_of(annotation: ast.expr) -> type:
    """int, float or bool when the annotation names one (`int | None`), else str."""
    names = {node.id for node in ast.walk(annotation) if isinstance(node, ast.Name)}
    return next((kind for name, kind in _TYPES.items() if name in names), str)


@lru_cache(maxsize=1)
def organisation_fields() -> tuple[OrgField, ...]:
    """Each field of `NewOrganisation`, in order, with its type and default (parsed once: both
    `org add` and `org update` are built from it at every command's start)."""
    source = (Path(__file__).resolve().parent.parent / "services" / "orgs.py").read_text()
    for node in ast.parse(source).body:
        if isinstance(node, ast.ClassDef) and node.name == "NewOrganisation":
            return tuple(
                OrgField(
                    item.target.id,
                    _type_of(item.annotation),
                    _REQUIRED if item.value is None else ast.literal_eval(item.value),
                )
                for item in node.body
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)
            )
    raise RuntimeError("worker/services/orgs.py has no NewOrganisation")


def _option(field: OrgField, *, for_update: bool) -> inspect.Parameter:
    flag = f"--{field.name.replace('_', '-')}"
    if field.kind is bool:  # a switch both ways: `--allow-insecure-http/--no-allow-insecure-http`
        flag = f"{flag}/--no-{flag[2:]}"
    help_text = ORG_OPTION_HELP.get(field.name, field.name.replace("_", " "))
    if for_update:
        default, kind = None, field.kind | None
        option = typer.Option(flag, help=help_text, show_default=False)
    else:
        default = ADD_DEFAULTS.get(field.name, field.default)
        kind = field.kind if default is _REQUIRED or default is not None else field.kind | None
        option = typer.Option(flag, help=help_text)
    return inspect.Parameter(
        field.name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=Annotated[kind, option]
    )


def signature(*, for_update: bool) -> inspect.Signature:
    """`SLUG` then one option per field, then `--no-test`: the parameters of `org add` / `org update`."""
    params = [
        inspect.Parameter(
            "slug",
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            annotation=Annotated[str, typer.Argument(help="Short name, e.g. clinic-a")],
        )
    ]
    fields = [field for field in organisation_fields() if field.name != "slug"]
    params += [_option(field, for_update=for_update) for field in fields]
    no_test = typer.Option("--no-test", help="Store without testing the connections")
    params.append(
        inspect.Parameter(
            "no_test", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=Annotated[bool, no_test]
        )
    )
    return inspect.Signature(params)
