"""Audit log, outbox and live events."""
