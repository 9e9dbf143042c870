"""Moderation: bans with reason and expiry."""
