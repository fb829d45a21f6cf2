"""Key states (docs/architecture.md §7) and the metadata record kept for every signing key."""

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Self

from sekisho.errors import KeyStoreError


class KeyState(StrEnum):
    """Lifecycle of a signing key: next → active → retiring → retired; revoked at any time."""

    NEXT = "next"
    ACTIVE = "active"
    RETIRING = "retiring"
    RETIRED = "retired"
    REVOKED = "revoked"


PUBLISHED_STATES = frozenset({KeyState.NEXT, KeyState.ACTIVE, KeyState.RETIRING})
_BASE64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """What the keystore remembers about one key (never the private key itself)."""

    kid: str
    alg: str
    state: KeyState
    created_at: int
    activated_at: int = 0
    retire_after: int = 0  # 0 = no planned retirement yet

    @property
    def published(self) -> bool:
        return self.state in PUBLISHED_STATES

    def to_json(self) -> dict[str, Any]:
        return {
            "kid": self.kid,
            "alg": self.alg,
            "state": self.state.value,
            "created_at": self.created_at,
            "activated_at": self.activated_at,
            "retire_after": self.retire_after,
        }

    @classmethod
    def from_json(cls, raw: Any) -> Self:
        """Raises: KeyStoreError when a field is missing or of the wrong type."""
        try:
            return cls(
                kid=_kid(raw["kid"]),
                alg=_str(raw["alg"]),
                state=KeyState(raw["state"]),
                created_at=_int(raw["created_at"]),
                activated_at=_int(raw.get("activated_at", 0)),
                retire_after=_int(raw.get("retire_after", 0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise KeyStoreError(f"invalid key record: {exc}") from exc


def is_valid_kid(kid: str) -> bool:
    """kids are RFC 7638 thumbprints (base64url); anything else could name a file elsewhere."""
    return 0 < len(kid) <= 128 and set(kid) <= _BASE64URL


def _kid(value: Any) -> str:
    kid = _str(value)
    if not is_valid_kid(kid):
        raise TypeError("kid must be base64url")
    return kid


def _str(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise TypeError("expected a non-empty string")
    return value


# 9999-12-31T23:59:59Z: beyond it no clock or time.gmtime() can render the value.
MAX_TIMESTAMP = 253_402_300_799


def _int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_TIMESTAMP:
        raise TypeError(f"expected a Unix time between 0 and {MAX_TIMESTAMP}")
    return value
