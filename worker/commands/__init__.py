"""Command groups of the `ptsync` CLI that live outside worker/cli.py (registered there)."""
