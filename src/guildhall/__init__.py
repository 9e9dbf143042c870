"""Guildhall: one back office behind the Heliactyl, Rustmail, LD7, SkyPANEL and Aurora APIs."""

__version__ = "0.1.0"
