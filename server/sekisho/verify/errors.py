"""What sekisho.verify raises: "the token is bad" is split from "we could not check it"."""


class VerificationError(Exception):
    """Base class."""


class TokenRejectedError(VerificationError):
    """The token is not acceptable (signature, typ, iss, aud, exp, resource, scope)."""


class ReplayedTokenError(TokenRejectedError):
    """The token's jti was already used (MCP Enterprise-Managed Authorization replay rule)."""


class InsufficientScopeError(TokenRejectedError):
    """The token is valid but lacks a scope the operation needs (RFC 6750 §3.1)."""


class VerifierUnavailableError(VerificationError):
    """JWKS or the replay cache could not be consulted: refuse and let the caller retry."""
