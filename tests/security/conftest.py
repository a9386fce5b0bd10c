"""The security tests reuse the web fixtures (an organisation, its tokens, a test client)."""

from tests.web.conftest import client, clinic, sent  # noqa: F401
