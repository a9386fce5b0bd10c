"""Following `next` links page by page, failing loudly on a page that repeats.

A server bug that hands back the same next link would otherwise loop forever, or worse,
stop early and read as "these are all the rows". Either way the pull must fail instead.
A next link on another origin (scheme, host or port) is refused before it is requested: the
connector's credentials must never reach a host the clinic did not configure.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from connectors.errors import ConnectorError
from connectors.http import HttpClient

MAX_PAGES = 100_000


def pages(
    http: HttpClient,
    first: str,
    params: dict[str, Any] | list[tuple[str, Any]] | None,
    next_link: Callable[[Any], str | None],
) -> Iterator[Any]:
    """Yield each page's decoded JSON, starting at `first` with `params`, then following links."""
    seen: set[str] = set()
    url: str | None = first
    current_params = params
    for _ in range(MAX_PAGES):
        if url is None:
            return
        key = url if current_params is None else f"{url}?{current_params!r}"
        if key in seen:
            raise ConnectorError(http.connector, f"the server repeated a page ({_path(url)}): stopping")
        seen.add(key)
        document = http.get_json(url, params=current_params)
        yield document
        url = next_link(document)
        if url is not None:
            if not isinstance(url, str):
                raise ConnectorError(http.connector, "the server sent a next link that is not a string")
            http.check_origin(url, "a next link")
        current_params = None  # a next link carries its own query
    raise ConnectorError(http.connector, f"more than {MAX_PAGES} pages: stopping")


def _path(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).path
