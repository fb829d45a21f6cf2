"""The callers registry ([[callers]]): which certificate identities may call Sekisho, their
client id at each downstream (docs/architecture.md §4 client_id rule) and their rate limit.

An identity the TLS layer authenticated but the registry does not know is refused
(`invalid_client`): a valid certificate from the organisation's CA is not by itself permission.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from sekisho.errors import InvalidClientError
from sekisho.identity.peer import PeerIdentity
from sekisho.models import Caller


@dataclass(frozen=True, slots=True)
class RateLimit:
    """A token bucket: `rate_per_second` sustained, `burst` at once."""

    rate_per_second: float
    burst: int


@dataclass(frozen=True, slots=True)
class RegisteredCaller:
    """One [[callers]] entry."""

    id: str
    client_ids: Mapping[str, str] = field(default_factory=dict)
    rate: RateLimit | None = None


class CallerRegistry:
    """Turns the transport's peer identity into the Caller policy sees, or refuses."""

    def __init__(self, callers: Iterable[RegisteredCaller], *, require_client_auth: bool) -> None:
        self._callers = {caller.id: caller for caller in callers}
        self._required = require_client_auth

    @property
    def client_auth_required(self) -> bool:
        return self._required

    @property
    def registered(self) -> bool:
        """Whether any caller is registered (mTLS client authentication is possible)."""
        return bool(self._callers)

    def authenticate(self, peer: PeerIdentity | None) -> Caller:
        """The caller for a verified certificate identity (None: no certificate presented).

        Raises: InvalidClientError when a certificate is required but absent, or its identity
        is not registered.
        """
        if peer is None:
            if self._required:
                raise InvalidClientError("a client certificate is required")
            return Caller()
        registered = self._callers.get(peer.id)
        if registered is None:
            raise InvalidClientError(
                "the caller is not a registered client",
                log_detail=f"unregistered certificate identity {peer.id!r}",
            )
        return Caller(
            id=registered.id,
            spiffe_id=peer.spiffe_id,
            authenticated_by="mtls",
            client_ids=tuple(sorted(registered.client_ids.items())),
        )

    def rates(self) -> dict[str, RateLimit]:
        """Per-caller rate limits, by caller id."""
        return {c.id: c.rate for c in self._callers.values() if c.rate is not None}
