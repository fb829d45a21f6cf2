"""Sekisho: policy-driven token exchange for AI agents."""

__version__ = "0.1.0"
