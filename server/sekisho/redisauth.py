"""How Sekisho reaches a Redis (replay cache, status-list store): the redis package is an extra
(sekisho[redis]), checked before use; the password never sits in a URL (config dumps, logs and
error messages print URLs), it is read from the environment variable a `*_password_env` setting
names; rediss:// verifies against an optional CA file."""

import importlib.util
import os
from pathlib import Path
from typing import Any

from sekisho.errors import ConfigError


def require_redis(config_key: str) -> None:
    """Raises: ConfigError naming `config_key` when the redis package is not installed."""
    if importlib.util.find_spec("redis") is None:
        raise ConfigError(
            f"config key '{config_key}': the redis package is not installed "
            "(pip install 'sekisho[redis]')"
        )


def redis_auth(password_env: str, ca_file: Path | None) -> dict[str, Any]:
    """from_url() keywords: the ACL password from `password_env`, the CA for rediss://.

    Raises: ConfigError when the variable is named but empty.
    """
    options: dict[str, Any] = {}
    if password_env:
        password = os.environ.get(password_env, "")
        if not password:
            raise ConfigError(f"${password_env} (a Redis password variable) is empty or unset")
        options["password"] = password
    if ca_file is not None:
        options["ssl_ca_certs"] = str(ca_file)
    return options
