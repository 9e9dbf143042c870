"""Hosted servers: ownership, plans, and a power state machine over a driver."""
