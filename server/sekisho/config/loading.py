"""Loading: read the TOML file, validate it with the SEKISHO_* overrides, name the offending key in
every error, resolve relative paths."""

import difflib
import re
import tomllib
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from sekisho.config.paths import resolve_paths
from sekisho.config.settings import Settings
from sekisho.errors import ConfigError

# A validator's message that starts with a key path (relative to the table it validates) and ": "
# is about that key: a rule relating two keys runs on their table, or on the whole tree.
_KEYED_MESSAGE = re.compile(r"([a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)*): (.+)", re.DOTALL)


def _format_errors(err: ValidationError, source: str) -> str:
    lines = []
    for item in err.errors():
        loc, message = _keyed(item["loc"], item["msg"], item.get("ctx", {}).get("error"))
        key = ".".join(str(part) for part in loc) or "(top level)"
        hint = _unknown_key_hint(loc) if item["type"] == "extra_forbidden" else ""
        lines.append(f"{source}: config key '{key}': {message}{hint}")
    return "\n".join(lines)


def _keyed(
    loc: tuple[int | str, ...], msg: str, error: object
) -> tuple[tuple[int | str, ...], str]:
    """The key a validator's error is about and its message: `loc` and pydantic's `msg` unless
    the validator's own message opens with the path of a key of the table at `loc` (then that
    key, and the message without it or pydantic's "Value error, ")."""
    match = _KEYED_MESSAGE.fullmatch(str(error)) if isinstance(error, ValueError) else None
    if match is None:
        return loc, msg
    *table, name = match.group(1).split(".")
    owner = _model_at((*loc, *table))
    if owner is None or name not in owner.model_fields:
        return loc, msg
    return (*loc, *table, name), match.group(2)


def _unknown_key_hint(loc: tuple[int | str, ...]) -> str:
    """What to do about an unknown key: the table it belongs to, or the key it is a typo of.

    TOML gives every key after a `[[a.b]]` header to that array entry until the next header, so
    a key of `[a]` written below `[[a.b]]` arrives as `a.b.0.key` (the walkthrough of session 14
    met it replacing `clients = []` in config/example.toml with a client).
    """
    name = str(loc[-1])
    if len(loc) >= 3 and isinstance(loc[-2], int):
        table, array = loc[:-3], ".".join(str(part) for part in loc[:-2])
        owner = _model_at(table)
        if owner is not None and name in owner.model_fields:
            where = f"[{'.'.join(str(part) for part in table)}]" if table else "top-level"
            return (
                f" (a {where} key written below a [[{array}]] header, which makes it part of "
                f"that entry: move it above the first [[{array}]])"
            )
    model = _model_at(loc[:-1])
    close = difflib.get_close_matches(name, list(model.model_fields), n=1) if model else []
    if close:
        return f" (unknown key: did you mean '{close[0]}'?)"
    return " (unknown key; config/example.toml lists every key)"


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The settings model of the table at `loc` (list indexes skipped); None if there is none."""
    model: type[BaseModel] = Settings
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        inner = _model_in(field.annotation) if field is not None else None
        if inner is None:
            return None
        model = inner
    return model


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds: itself, or inside list[...], tuple[...] or X | None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


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
