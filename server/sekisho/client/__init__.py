"""Caller-side tools: the `sekisho exchange` command (the SDK proper arrives with its issue)."""
