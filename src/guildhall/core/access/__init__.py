"""API keys: hashed, scoped, expiring, revocable."""
