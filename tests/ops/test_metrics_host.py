"""Where the worker's and the clock's metrics ports listen."""

from __future__ import annotations

import pytest

from worker import ops_server


@pytest.mark.parametrize(("setting", "listens_on"), [(None, "0.0.0.0"), ("127.0.0.1", "127.0.0.1")])
def test_the_metrics_port_listens_where_ptsync_metrics_host_says(monkeypatch, setting, listens_on):
    """Given PTSYNC_METRICS_HOST unset, or 127.0.0.1 / When a metrics port starts / Then it
    listens on every interface (a scraper in another container reaches it), or only on this
    machine."""
    if setting is None:
        monkeypatch.delenv("PTSYNC_METRICS_HOST", raising=False)
    else:
        monkeypatch.setenv("PTSYNC_METRICS_HOST", setting)
    server = ops_server.start(0, lambda: b"")
    try:
        assert server is not None and server.server_address[0] == listens_on
    finally:
        server.shutdown()
        server.server_close()
