"""Loading: read the TOML file, validate it with the SEKISHO_* overrides, name the offending key in
every error, resolve relative paths."""

import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from sekisho.config.paths import resolve_paths
from sekisho.config.settings import Settings
from sekisho.errors import ConfigError


def _format_errors(err: ValidationError, source: str) -> str:
    lines = []
    for item in err.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        lines.append(f"{source}: config key '{key}': {item['msg']}")
    return "\n".join(lines)


def load_settings(path: Path | None) -> Settings:
    """Load and validate the TOML file at `path` (or defaults), then apply SEKISHO_* overrides.

    Raises:
        ConfigError: unreadable file, bad TOML, unknown key or invalid value (the key is named).
    """
    data: dict[str, Any] = {}
    base = Path.cwd()
    source = "defaults"
    if path is not None:
        source = str(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"{source}: cannot read config file: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{source}: invalid TOML: {exc}") from exc
        base = path.resolve().parent
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, f"{source} (or a SEKISHO_* variable)")) from exc
    return resolve_paths(settings, base)
