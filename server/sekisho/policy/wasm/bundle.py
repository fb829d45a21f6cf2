"""Reading an OPA bundle (`opa build -t wasm` output): a gzipped tar with /policy.wasm,
/data.json and /.manifest (OPA docs, "Bundles"). Sizes are bounded before anything is read in
full, since bundles may come from a server: the compressed body (download.py), the files' total
and, before tarfile sees it, the decompressed tar itself. tarfile reads a GNU long-name or pax
header's whole (declared) size into memory and decompresses its way past the data of members it
skips, none of which the files' total counts: 300 KB of gzip made 300 MB of one header.

A bundle server's JSON is bounded in values too (`check_json_values`), before any of it is
parsed: Python holds 8-28x a JSON document's bytes (an empty object, `{},`, is 3 bytes and
~72 bytes parsed), so 61 KB of gzip holding a 60 MiB data.json of `{}` took 1.6 GB and 6 s of
the GIL to parse, on every poll and before the signature was checked (red team session 13).
"""

import gzip
import io
import json
import tarfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sekisho.errors import PolicyLoadError
from sekisho.policy.source import refuse_lone_surrogates

MAX_BUNDLE_BYTES = 64 * 1024 * 1024
_MAX_FILES = 10_000
# The decompressed tar: the files' limit plus room for headers and padding (~1.5 KB per file).
MAX_TAR_BYTES = MAX_BUNDLE_BYTES + 16 * 1024 * 1024
# JSON values in all of a served bundle's structured files together (data, manifest, signature,
# and what the signature hashes in canonical form). Parsed, one value costs Python at most ~90
# bytes (a one-member object: 85), so a parse holds at most ~180 MB; the shipped registry is 190
# values, and the embedded engine's default memory (256 MB) cannot load 2,000,000 values of
# objects anyway (bench/results/redteam_session13.md).
MAX_JSON_VALUES = 2_000_000
# ...at the default [policy] memory_limit_mb (256), and this many per MB of a larger one: the Wasm
# instance holds the same data in more bytes per value than Python does (2,100,000 integers load
# at 512 MB, not at 256), so an operator who raises the memory for a large registry must not meet
# a fixed bound that no setting lifts (red team session 13b).
JSON_VALUES_PER_MB = 7_812  # MAX_JSON_VALUES / 256, rounded down
_STRUCTURED = (".json", ".yaml", ".yml", ".manifest")


@dataclass(frozen=True, slots=True)
class BundleContents:
    """The files of a Wasm bundle that the embedded engine uses."""

    wasm: bytes
    data: dict[str, Any]
    manifest: dict[str, Any]
    files: dict[str, bytes] = field(default_factory=dict)


def read_bundle(
    raw: bytes, check: Callable[[dict[str, bytes]], None] | None = None
) -> BundleContents:
    """`check` sees the files before any is parsed (a served bundle's bounds and signature).

    Raises: PolicyLoadError naming what is wrong with the bundle."""
    files = _members(raw)
    if check is not None:
        check(files)
    wasm_modules = [name for name in files if name.endswith(".wasm")]
    if wasm_modules != ["/policy.wasm"]:
        raise PolicyLoadError(f"bundle must hold exactly /policy.wasm, found {wasm_modules}")
    manifest = _json(files, "/.manifest", {})
    if not isinstance(manifest, dict):
        raise PolicyLoadError("bundle /.manifest must hold a JSON object")
    return BundleContents(files["/policy.wasm"], _data(files), manifest, files)


def json_value_limit(memory_limit_bytes: int) -> int:
    """The bound on a bundle's JSON values for an engine of this Wasm memory ([policy]
    memory_limit_mb): MAX_JSON_VALUES, or JSON_VALUES_PER_MB per MB when that is more."""
    return max(MAX_JSON_VALUES, memory_limit_bytes // 2**20 * JSON_VALUES_PER_MB)


def check_json_values(files: dict[str, bytes], limit: int = MAX_JSON_VALUES) -> None:
    """Refuse a bundle whose structured files may hold more than `limit` values, counted
    without parsing: a JSON text holds at most one value more than its `{`, `[` and `,` bytes
    (each container's members are one more than the commas between them), strings holding
    them only raising the count.

    Raises: PolicyLoadError naming the setting that raises the limit."""
    values = sum(
        data.count(b"{") + data.count(b"[") + data.count(b",") + 1
        for name, data in files.items()
        if name.endswith(_STRUCTURED)
    )
    if values > limit:
        raise PolicyLoadError(
            f"bundle JSON may hold {values} values, more than the limit ({limit}: "
            f"{JSON_VALUES_PER_MB} per MB of [policy] memory_limit_mb, at least {MAX_JSON_VALUES})"
        )


def _data(files: dict[str, bytes]) -> dict[str, Any]:
    """Every data.json, at the path of its folder (/a/b/data.json is data.a.b)."""
    data: dict[str, Any] = {}
    for name in sorted(n for n in files if n == "/data.json" or n.endswith("/data.json")):
        document = _json(files, name, {})
        path = [part for part in name.split("/")[1:-1] if part]
        if not path:
            if not isinstance(document, dict):
                raise PolicyLoadError("bundle /data.json must hold a JSON object")
            _merge_into(data, document, name)
            continue
        node = data
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise PolicyLoadError(f"bundle {name}: data path conflicts with another file")
        if path[-1] in node:
            raise PolicyLoadError(f"bundle {name}: data path conflicts with another file")
        node[path[-1]] = document
    return data


def _merge_into(data: dict[str, Any], document: dict[str, Any], name: str) -> None:
    for key, value in document.items():
        if key in data:
            raise PolicyLoadError(f"bundle {name}: data.{key} is defined twice")
        data[key] = value


def _decompressed(raw: bytes) -> bytes:
    """The gzip stream's content, refused beyond MAX_TAR_BYTES without inflating the rest."""
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(raw)) as stream:
            tar = stream.read(MAX_TAR_BYTES + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise PolicyLoadError(f"bundle is not a readable .tar.gz: {exc}") from exc
    if len(tar) > MAX_TAR_BYTES:
        raise PolicyLoadError(f"bundle is larger than the limit ({MAX_TAR_BYTES} bytes as a tar)")
    return tar


def _members(raw: bytes) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    total = 0
    tar = _decompressed(raw)
    try:
        with tarfile.open(fileobj=io.BytesIO(tar), mode="r:") as archive:
            for member in archive:
                if not member.isfile():
                    continue
                total += member.size
                if total > MAX_BUNDLE_BYTES or len(files) >= _MAX_FILES:
                    raise PolicyLoadError("bundle is larger than the limit")
                handle = archive.extractfile(member)
                if handle is not None:
                    files["/" + member.name.lstrip("/")] = handle.read()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise PolicyLoadError(f"bundle is not a readable .tar.gz: {exc}") from exc
    return files


def _json(files: dict[str, bytes], name: str, default: Any) -> Any:
    if name not in files:
        return default
    try:
        document = json.loads(files[name])
    except (ValueError, RecursionError) as exc:  # nesting deeper than the decoder goes
        raise PolicyLoadError(f"bundle {name} is not valid JSON: {exc}") from exc
    refuse_lone_surrogates(document, f"bundle {name}")
    return document
