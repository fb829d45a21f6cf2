"""Red team, session 5: a bundle is bounded after decompression, not only as downloaded.

A bundle server (or whoever can answer for it) sends at most MAX_BUNDLE_BYTES of gzip, and the
files of the tar may total at most MAX_BUNDLE_BYTES; but tarfile reads a GNU long-name header's
whole declared size into memory (and a pax header's, and inflates its way past the data of
members it skips) before any file is counted and before the signature is checked. 300 KB of
gzip held one 300 MB header in memory; a 64 MB body inflates to ~64 GB: the worker runs out of
memory on a bundle it would have refused. The decompressed tar is now bounded (MAX_TAR_BYTES)
before tarfile reads it.
"""

import tarfile
import tracemalloc
import zlib

import pytest
from sekisho.errors import PolicyLoadError
from sekisho.policy.wasm.bundle import MAX_BUNDLE_BYTES, read_bundle

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
