"""Accounts: one per person, found by any of its linked identities."""
