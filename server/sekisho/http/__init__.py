"""HTTP side on the same event loop: JWKS, RFC 8414 metadata, health and readiness."""
