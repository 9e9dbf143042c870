"""The core: rules and invariants, knowing nothing of HTTP."""
