"""Red team, session 5: a bundle is bounded after decompression, not only as downloaded;
session 13: and in JSON values, before any is parsed (below).

A bundle server (or whoever can answer for it) sends at most MAX_BUNDLE_BYTES of gzip, and the
files of the tar may total at most MAX_BUNDLE_BYTES; but tarfile reads a GNU long-name header's
whole declared size into memory (and a pax header's, and inflates its way past the data of
members it skips) before any file is counted and before the signature is checked. 300 KB of
gzip held one 300 MB header in memory; a 64 MB body inflates to ~64 GB: the worker runs out of
memory on a bundle it would have refused. The decompressed tar is now bounded (MAX_TAR_BYTES)
before tarfile reads it.
"""

import base64
import gzip
import io
import json
import tarfile
import tracemalloc
import zlib
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sekisho.errors import PolicyLoadError
from sekisho.policy.wasm.bundle import (
    JSON_VALUES_PER_MB,
    MAX_BUNDLE_BYTES,
    MAX_JSON_VALUES,
    check_json_values,
    read_bundle,
)
from sekisho.policy.wasm.bundles import BundlePolicyEngine
from sekisho.policy.wasm.signing import BundleVerifier

from tests.bounds import bundle_polling, wasm_limits
from tests.embedded import shared_runtime
from tests.fakes.loops import RecordedFailures

pytestmark = pytest.mark.security

HEADER_BYTES = 2 * MAX_BUNDLE_BYTES  # over the tar's bound (MAX_BUNDLE_BYTES + 16 MiB) by far


def _long_name_bomb(size: int) -> bytes:
    """A .tar.gz whose first member is a GNU long-name header of `size` bytes (about 0.5 % of
    that once compressed), and nothing else."""
    header = tarfile.TarInfo("././@LongLink")
    header.type = tarfile.GNUTYPE_LONGNAME
    header.size = size
    block = header._create_header(  # tobuf() would write the long name itself
        header.get_info(), tarfile.GNU_FORMAT, "utf-8", "surrogateescape"
    )
    gzip = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunk = b"a" * (4 << 20)
    parts = [gzip.compress(block)]
    parts += [gzip.compress(chunk) for _ in range(size // len(chunk))]
    return b"".join([*parts, gzip.flush()])


def test_a_bundle_inflating_past_the_limit_is_refused_without_being_held() -> None:
    raw = _long_name_bomb(HEADER_BYTES)
    assert len(raw) < HEADER_BYTES // 100  # the download bound does not see it
    tracemalloc.start()
    try:
        with pytest.raises(PolicyLoadError, match="larger than the limit"):
            read_bundle(raw)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Before: the whole header was read (peak > HEADER_BYTES), then refused for its content.
    assert peak < MAX_BUNDLE_BYTES + 32 * 1024 * 1024


# Red team, session 13: a served bundle's JSON costs what it parses to, not what it weighs.
# Python holds an empty object (`{},`, 3 bytes) in ~72 bytes: 61 KB of gzip holding a 60 MiB
# data.json of them took 1.6 GB and 6 s of the GIL, on every poll, before the signature check.


def _bundle(files: dict[str, bytes]) -> bytes:
    """A .tar.gz of `files` (name -> bytes), as a bundle server would send it."""
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w") as archive:
        for name, data in files.items():
            member = tarfile.TarInfo(name)
            member.size = len(data)
            archive.addfile(member, io.BytesIO(data))
    return gzip.compress(tar.getvalue(), 1)


def _counted(units: int) -> bytes:
    """A data.json whose `{`, `[` and `,` bytes plus one are `units` (empty objects)."""
    objects = (units - 2) // 2  # the wrapper's `{` `[` and the one, then `{` and `,` each
    assert 2 * objects + 2 == units
    return b'{"bulk":[' + b"{}," * (objects - 1) + b"{}]}"


def _served_engine(
    verifier: BundleVerifier | None = None, memory_limit_mb: int = 256
) -> BundlePolicyEngine:
    return BundlePolicyEngine(
        "data.sekisho.exchange.decision",
        wasm_limits(memory_limit_bytes=memory_limit_mb * 2**20),
        runtime=shared_runtime(),
        failures=RecordedFailures(),
        polling=bundle_polling(),
        verifier=verifier,
    )


@pytest.fixture
def parsed(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sizes of the documents handed to json.loads (the bundle reader's and the signature
    digest's) during the test."""
    sizes: list[int] = []
    real = json.loads

    def loads(document: Any, *args: Any, **kwargs: Any) -> Any:
        sizes.append(len(document))
        return real(document, *args, **kwargs)

    monkeypatch.setattr(json, "loads", loads)
    return sizes


def test_bundle_json_past_the_value_bound_is_refused_before_it_is_parsed(
    parsed: list[int],
) -> None:
    data = _counted(MAX_JSON_VALUES + 2)  # 3 MB of JSON, ~72 MB once parsed
    raw = _bundle({"policy.wasm": b"\0asm\x01\0\0\0", "data.json": data})
    assert len(raw) < 64 * 1024
    with pytest.raises(PolicyLoadError, match="more than the limit"):
        _served_engine().load(raw)
    # Before: data.json was parsed, then the module failed to compile.
    assert max(parsed, default=0) < len(data)


def test_a_bundle_that_does_not_verify_is_refused_before_its_data_is_parsed(
    parsed: list[int],
) -> None:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    pem = key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    data = _counted(MAX_JSON_VALUES)  # within the bound
    raw = _bundle({"policy.wasm": b"\0asm\x01\0\0\0", "data.json": data})
    with pytest.raises(PolicyLoadError, match="not signed"):
        _served_engine(BundleVerifier(pem.decode(), "ES256")).load(raw)
    # Before: read_bundle parsed data.json, then the signature was checked.
    assert max(parsed, default=0) < len(data)


def test_a_bundle_within_the_value_bound_is_read() -> None:
    data = _counted(MAX_JSON_VALUES)
    raw = _bundle({"policy.wasm": b"\0asm", "data.json": data})
    contents = read_bundle(raw, check=check_json_values)
    assert len(contents.data["bulk"]) == (MAX_JSON_VALUES - 2) // 2


def test_a_signature_jwt_header_is_bounded_before_it_is_parsed(parsed: list[int]) -> None:
    """Red team, session 13b: the value bound counts .signatures.json's JWT as one string, but
    PyJWT parses the JWT's header as JSON before checking the signature: 64 KB of gzip holding a
    47 MiB header of `{},` cost 5.9 s and +1.5 GB before "does not verify"."""
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    pem = key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = b'{"alg":"ES256","x":[' + b"{}," * 300_000 + b"{}]}"  # ~0.9 MB, ~22 MB parsed
    segment = base64.urlsafe_b64encode(header).rstrip(b"=").decode()
    signatures = json.dumps({"signatures": [f"{segment}.e30.AAAA"]}).encode()
    raw = _bundle(
        {"policy.wasm": b"\0asm\x01\0\0\0", "data.json": b"{}", ".signatures.json": signatures}
    )
    with pytest.raises(PolicyLoadError, match="JWT header longer than"):
        _served_engine(BundleVerifier(pem.decode(), "ES256")).load(raw)
    # Before: PyJWT handed the whole header to json.loads, then the signature failed (the
    # .signatures.json document itself, one string, is parsed: it is what holds the JWT).
    assert len(header) not in parsed


def test_the_value_bound_grows_with_the_wasm_memory_and_says_so() -> None:
    """Red team, session 13b: the bound was a constant, so a registry of 2,100,000 integers,
    which the engine loads with memory_limit_mb = 512 (not 256), was refused whatever the
    configuration, by a message naming no setting."""
    files = {"/data.json": _counted(MAX_JSON_VALUES + 2)}
    with pytest.raises(PolicyLoadError, match=r"per MB of \[policy\] memory_limit_mb"):
        _served_engine()._check(files)
    _served_engine(memory_limit_mb=512)._check(files)  # 3,999,744 values at 512 MB
    assert 256 * JSON_VALUES_PER_MB <= MAX_JSON_VALUES  # the default bound is unchanged
