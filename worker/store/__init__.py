"""Persistence: models, the database engine and migrations, and repositories."""
