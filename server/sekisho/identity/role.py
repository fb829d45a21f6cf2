"""The role the exchange pipeline needs from inbound verification."""

from typing import Protocol

from sekisho.models import VerifiedToken


class InboundVerifier(Protocol):
    """Verifies a subject or actor token (TokenVerifier, or CachingTokenVerifier around it)."""

    async def verify(self, token: str, token_type: str) -> VerifiedToken:
        """Raises: InvalidRequestError, InvalidTokenError, TemporarilyUnavailableError."""
        ...
