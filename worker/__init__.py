"""The imperative shell of ptsync: settings, storage, queues, the CLI."""
