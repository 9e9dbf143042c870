"""The SkyPANEL API."""
