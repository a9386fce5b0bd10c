"""Everything that talks to the outside: PMS connectors and PT Direct adapters."""
