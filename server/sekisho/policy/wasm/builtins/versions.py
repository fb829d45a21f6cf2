"""semver.is_valid and semver.compare (topdown/semver.go) with the semantics of the OPA release
Sekisho builds with, checked against `opa eval` on generated versions
(tests/unit/policy/wasm/test_semver_subset_builtins.py): a version is semver.org's 2.0.0 grammar
(no leading zeros in numeric parts or numeric pre-release identifiers, no empty identifiers)
with an optional single leading `v`, and major, minor and patch each fit in an int64. Ordering is
semver.org's precedence; build metadata does not take part."""

import re
from dataclasses import dataclass
from typing import Any

from sekisho.policy.wasm.builtins.registry import BuiltinError, HostBuiltin

_NUMERIC = r"0|[1-9][0-9]*"
_PRERELEASE_ID = rf"(?:{_NUMERIC}|[0-9]*[A-Za-z-][0-9A-Za-z-]*)"
_VERSION = re.compile(
    rf"v?({_NUMERIC})\.({_NUMERIC})\.({_NUMERIC})"
    rf"(?:-({_PRERELEASE_ID}(?:\.{_PRERELEASE_ID})*))?"
    r"(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
)
_INT64_MAX = 2**63 - 1


@dataclass(frozen=True, slots=True)
class Version:
    core: tuple[int, int, int]
    prerelease: tuple[str, ...]


def parse(text: str) -> Version | None:
    """The version, or None when `text` is not one."""
    match = _VERSION.fullmatch(text)
    if match is None:
        return None
    major, minor, patch = (int(match.group(i)) for i in (1, 2, 3))
    if max(major, minor, patch) > _INT64_MAX:
        return None
    prerelease = tuple(match.group(4).split(".")) if match.group(4) else ()
    return Version((major, minor, patch), prerelease)


def compare(a: Version, b: Version) -> int:
    """-1, 0 or 1 by semver.org precedence (rule 11)."""
    if a.core != b.core:
        return -1 if a.core < b.core else 1
    if a.prerelease == b.prerelease:
        return 0
    if not a.prerelease or not b.prerelease:
        return 1 if not a.prerelease else -1  # a release outranks its pre-releases
    for x, y in zip(a.prerelease, b.prerelease, strict=False):
        order = _identifier_order(x, y)
        if order:
            return order
    return -1 if len(a.prerelease) < len(b.prerelease) else 1


def _identifier_order(x: str, y: str) -> int:
    x_numeric, y_numeric = x.isdigit(), y.isdigit()
    if x_numeric != y_numeric:
        return -1 if x_numeric else 1  # numeric identifiers rank below alphanumeric ones
    if x_numeric:
        left, right = int(x), int(y)
        return (left > right) - (left < right)
    return (x > y) - (x < y)  # ASCII only (the grammar), so code-point order is byte order


def _is_valid(value: Any) -> bool:
    return isinstance(value, str) and parse(value) is not None


def _compare(first: Any, second: Any) -> int:
    versions = [parse(v) if isinstance(v, str) else None for v in (first, second)]
    a, b = versions
    if a is None or b is None:
        raise BuiltinError("semver.compare: operands must be valid SemVer strings")
    return compare(a, b)


BUILTINS = (
    HostBuiltin("semver.is_valid", _is_valid),
    HostBuiltin("semver.compare", _compare),
)
