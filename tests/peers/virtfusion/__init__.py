"""A stateful VirtFusion control server (API v1) for end-to-end tests."""
