"""Messaging-platform connectors for bot sessions (``core/sessions/connector.py``)."""
