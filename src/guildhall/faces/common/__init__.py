"""Pieces every face uses the same way."""
