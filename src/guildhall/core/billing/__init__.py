"""Invoices in exact money."""
