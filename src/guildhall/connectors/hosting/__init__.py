"""Hosting drivers for servers (``core/hosting/driver.py``)."""
