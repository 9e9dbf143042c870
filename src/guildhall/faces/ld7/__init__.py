"""The LD7 V1 multi-user API."""
