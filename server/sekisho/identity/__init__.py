"""Inbound verification: trusted issuers, OIDC discovery, JWKS cache, token verification."""
