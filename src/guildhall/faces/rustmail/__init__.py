"""The Rustmail REST API and its panel login."""
