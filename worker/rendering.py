"""The one Jinja environment: the pages and the standalone HTML report render through it.

Templates live in `worker/templates/`; autoescaping is on for HTML, so anything a PMS or an
admin typed is text, never markup.
"""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

templates = Environment(
    loader=PackageLoader("worker", "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def render(name: str, **context: Any) -> str:
    return templates.get_template(name).render(**context)
