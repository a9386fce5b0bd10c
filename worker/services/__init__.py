"""Service functions: what actors, the CLI and the HTTP app call. One transaction each."""
