"""Messaging-bot sessions: pairing, lifecycle, backup and restore."""
