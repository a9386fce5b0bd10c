"""The HTTP app (Procfile `web`): webhooks, the admin API and the admin pages."""

from worker.web.app import create_app

__all__ = ["create_app"]
