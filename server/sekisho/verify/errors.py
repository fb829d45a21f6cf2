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


class StatusIssuerMismatchError(ValueError):
    """A StatusListClient was given a verifier or a token of another issuer than its own: a
    configuration error, raised as itself, never read as a token's status (revoked or valid)."""
