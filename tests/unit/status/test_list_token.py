"""A signed Status List Token is reused for `rebuild_seconds` of the injected clock (STYLE.md: no
wall or monotonic time read inside), then rebuilt from the store, so a revocation shows; a clock
set back rebuilds at once instead of serving the old list until the clock catches up."""

import base64
import json
from pathlib import Path

from sekisho.signing.filestore import FileKeyStore
from sekisho.signing.keyring import Keyring
from sekisho.status.filestore import FileStatusStore
from sekisho.status.listtoken import ListTiming, StatusListTokens
from sekisho.status.models import ListSnapshot

from tests.fakes.clock import FakeClock
from tests.unit.status.test_store_contract import NOW


class _OneList(FileStatusStore):
    """A store whose list 1 has the INVALID indexes the test sets."""

    invalid: frozenset[int] = frozenset()

    def snapshot(self, list_id: int) -> ListSnapshot | None:
        return ListSnapshot(list_id, 16, self.invalid) if list_id == 1 else None


def _tokens(tmp_path: Path, clock: FakeClock, store: FileStatusStore) -> StatusListTokens:
    keystore = FileKeyStore(tmp_path / "keys")
    keystore.init("ES256", NOW)
    keyring = Keyring(keystore)
    keyring.load()
    timing = ListTiming(ttl_seconds=300, lifetime_seconds=600, rebuild_seconds=10)
    return StatusListTokens(
        store, keyring, clock, issuer="https://s", base_uri="https://s/lists", bits=1, timing=timing
    )


def _claims(token: str | None) -> dict[str, object]:
    assert token is not None
    payload = token.split(".")[1]
    claims: dict[str, object] = json.loads(base64.urlsafe_b64decode(payload + "=" * 4))
    return claims


async def test_a_list_is_rebuilt_after_rebuild_seconds_of_the_injected_clock(
    tmp_path: Path,
) -> None:
    clock = FakeClock(NOW)
    store = _OneList(tmp_path / "status.db")
    tokens = _tokens(tmp_path, clock, store)
    first = await tokens.token(1)
    store.invalid = frozenset({3})  # revoked after the list was signed
    clock.advance(9)
    assert await tokens.token(1) == first  # still within rebuild_seconds: reused
    clock.advance(1)
    rebuilt = _claims(await tokens.token(1))
    assert rebuilt["iat"] == NOW + 10
    assert rebuilt["status_list"] != _claims(first)["status_list"]  # the revocation shows
    store.close()


async def test_a_clock_set_back_rebuilds_the_list(tmp_path: Path) -> None:
    clock = FakeClock(NOW)
    store = _OneList(tmp_path / "status.db")
    tokens = _tokens(tmp_path, clock, store)
    first = await tokens.token(1)
    store.invalid = frozenset({3})
    clock.advance(-120)
    rebuilt = _claims(await tokens.token(1))
    assert rebuilt["iat"] == NOW - 120
    assert rebuilt["status_list"] != _claims(first)["status_list"]
    store.close()
