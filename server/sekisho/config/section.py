"""What every config section shares: the base model (unknown keys are errors, values are
frozen) and the validators more than one section applies."""

import re
from urllib.parse import urlsplit

from sekisho.strict_model import StrictModel
from sekisho.urls import is_loopback_host


class Section(StrictModel):
    """A config section: unknown keys are errors, values are frozen (StrictModel)."""


def require_guarded_redis_url(url: str, what: str, *, env_setting: str) -> str:
    """redis:// only on loopback (or unix://); rediss:// elsewhere; never a password inline (it
    would be printed wherever the URL is: config dumps, logs, errors): `env_setting` names
    the environment variable holding it.

    Raises: ValueError naming `what` (never echoing the URL).
    """
    if not url:
        return url
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ValueError(f"{what} must be a redis://, rediss:// or unix:// URL")
    if parts.password or "password=" in parts.query:
        raise ValueError(
            f"{what} must not hold a password (config dumps, logs and errors print the URL): "
            f"put it in an environment variable and set {env_setting} to that variable's name"
        )
    if parts.scheme == "redis" and not is_loopback_host(parts.hostname or ""):
        raise ValueError(f"{what}: a Redis not on loopback needs TLS (rediss://)")
    return url


def require_env_name(value: str, what: str) -> str:
    """An environment variable's name (or ""). Raises: ValueError naming `what`."""
    if value and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
        raise ValueError(f"{what} must be the name of an environment variable")
    return value
