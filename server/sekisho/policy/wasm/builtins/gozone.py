"""Time zones as Go loads them for OPA's time builtins (Go 1.26 src/time/zoneinfo.go
`LoadLocation`, zoneinfo_read.go `loadLocation`, zoneinfo_unix.go `initLocal`), read with
Python's zoneinfo from the same files."""

import os
from datetime import UTC, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sekisho.policy.wasm.builtins.registry import BuiltinError

# Go's platformZoneSources; ZONEINFO is not set for OPA.
_GO_ZONE_DIRECTORIES = (
    "/usr/share/zoneinfo/",
    "/usr/share/lib/zoneinfo/",
    "/usr/lib/locale/TZ/",
    "/etc/zoneinfo",
)


def load_location(name: str) -> tzinfo:
    """time.LoadLocation(name), which OPA calls with the name as given. Raises: BuiltinError."""
    if name in ("", "UTC"):
        return UTC
    if name == "Local":
        return local_zone()
    if ".." in name or name[:1] in ("/", "\\"):
        raise BuiltinError(f"unknown time zone {name}")  # Go's errLocation
    try:
        return ZoneInfo(name)
    except ZoneInfoNotFoundError as exc:
        raise BuiltinError(f"unknown time zone {name}") from exc
    except ValueError:
        pass  # a key Python refuses as not normalized (`America//New_York`): Go opens the path
    zone = _from_directories(name, _GO_ZONE_DIRECTORIES)
    if zone is None:
        raise BuiltinError(f"unknown time zone {name}")
    return zone


def local_zone() -> tzinfo:
    """time.Local as Go's initLocal sets it: $TZ unset is /etc/localtime; empty or `UTC` is
    UTC; `:` is dropped; an absolute path is read as is, a name from the zone directories;
    whatever does not load is UTC. (Python's own local time is a fixed offset, the one in force
    now, and knows no daylight saving for other dates.)"""
    tz = os.environ.get("TZ")
    if tz is None:
        zone = _from_directories("localtime", ("/etc",))
    else:
        tz = tz.removeprefix(":")
        if tz in ("", "UTC"):
            return UTC
        zone = _from_directories(tz, ("",) if tz.startswith("/") else _GO_ZONE_DIRECTORIES)
    return zone if zone is not None else UTC


def _from_directories(name: str, directories: tuple[str, ...]) -> tzinfo | None:
    """Go's loadLocation: the first directory where `dir + "/" + name` (or `name` for "")
    holds a zone; Go goes on to the next when one does not."""
    for directory in directories:
        path = directory + "/" + name if directory else name
        try:
            with open(path, "rb") as file:
                return ZoneInfo.from_file(file, key=name)
        except (OSError, ValueError):
            continue
    return None
