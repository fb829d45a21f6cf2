"""Builtins OPA's Wasm target leaves to the host, implemented with OPA's semantics."""
