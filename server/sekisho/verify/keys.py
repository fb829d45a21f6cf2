"""Where verification keys come from (JwksClient, or a static dict wrapper)."""

from typing import Protocol

import jwt


class KeySource(Protocol):
    """Resolves a kid to a verification key."""

    async def key(self, kid: str) -> jwt.PyJWK:
        """Raises: TokenRejectedError, VerifierUnavailableError."""
        ...
