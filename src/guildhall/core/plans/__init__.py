"""Hosting plans: assigned package, extra resources, renewal bypass."""
