"""The `kms` keystore: every signing key is an asymmetric AWS KMS key; its state lives in KMS.

Layout, for `[keys] kms_alias_prefix = "sekisho"`:

- alias `alias/sekisho/<state>/<kid>` → the KMS key, one per Sekisho key. The alias is the
  source of truth for the state, and replicas find every key with one ListAliases call.
- tags on the key: `sekisho:alg`, `sekisho:created-at`, `sekisho:activated-at`,
  `sekisho:retire-after` (timestamps), `sekisho:state` (a mirror for people and IAM reviews),
  `sekisho:keyring` = the prefix.
- alias `alias/sekisho/lock` while a `sekisho keys` command or a rotating replica holds the lock.

KMS has no transactions, so a state change is ordered for readers: tags first, then the alias
for the new state, then removal of the old alias. Transitions only move forward (next → active
→ retiring → retired, any → revoked), so a reader that sees a kid under two states takes the
later one; promotions are applied before demotions, so there is never a moment without an
active key (two active keys resolve to the one activated last). Retired and revoked keys are
also disabled in KMS, before their alias moves, so they cannot sign even for a replica that has
not reloaded yet, and a key is never gone from the JWKS while still enabled.
"""

import contextlib
import logging
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

from sekisho.clock import Clock
from sekisho.errors import KeyStoreError, KeyStoreMissingError
from sekisho.signing.keyring import KeySet, KeyStatesUnreachableError, collect
from sekisho.signing.keys import KeyRecord, KeyState, is_valid_kid
from sekisho.signing.kms import KMS_KEY_TYPES, KmsSigner, RetryPolicy
from sekisho.signing.kms_client import KmsAlias, KmsAliasExistsError, KmsClient, KmsError
from sekisho.signing.kmslock import TAG, KmsAliasLock
from sekisho.signing.material import PublicKey, public_jwk, public_key_from_der, thumbprint
from sekisho.signing.signer import Signer

log = logging.getLogger(__name__)

LOCK_NAME = "lock"
_ORDER = {
    KeyState.NEXT: 0,
    KeyState.ACTIVE: 1,
    KeyState.RETIRING: 2,
    KeyState.RETIRED: 3,
    KeyState.REVOKED: 4,
}
_GONE = frozenset({KeyState.RETIRED, KeyState.REVOKED})


@dataclass(frozen=True, slots=True)
class _Member:
    kid: str
    key_id: str
    state: KeyState


class KmsKeyStore:
    """Keys and their states in AWS KMS, found by alias under one prefix."""

    def __init__(
        self,
        client: KmsClient,
        prefix: str,
        *,
        clock: Clock,
        retry: RetryPolicy | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._clock = clock
        self._retry = retry or RetryPolicy()
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not a secret
        self._public_keys: dict[str, PublicKey] = {}  # key id → public key, fetched once
        self._tags: dict[tuple[str, KeyState], dict[str, str]] = {}
        self._members: dict[str, _Member] = {}
        self._stale: list[str] = []  # old-state aliases a crashed change left behind
        self._pending: dict[str, str] = {}  # kid → key id, created but not committed

    def exists(self) -> bool:
        """Raises: KeyStoreError when KMS cannot be read."""
        return bool(self._scan())

    def records(self) -> list[KeyRecord]:
        """Raises: KeyStoreError when KMS cannot be read or a key's tags are malformed."""
        members = self._scan()
        if not members:
            raise KeyStoreMissingError(f"no keys under alias/{self._prefix}/")
        try:
            records = [self._record(m) for m in members.values()]
        except KmsError as exc:
            raise KeyStoreError(f"cannot read key tags from KMS: {exc}") from exc
        return _one_active(sorted(records, key=lambda r: (r.created_at, r.kid)))

    def load(self) -> KeySet:
        """Records plus a KmsSigner per published key. Raises: KeyLoadError (some keys),
        KeyStoreError."""
        return collect(tuple(self.records()), self._signer)

    def _signer(self, record: KeyRecord) -> Signer:
        member = self._members[record.kid]
        return KmsSigner(
            kid=record.kid,
            alg=record.alg,
            public_key=self._public_key(member.key_id, record.alg, record.kid),
            key_id=member.key_id,
            client=self._client,
            retry=self._retry,
            rng=self._rng,
        )

    def create_key(self, alg: str, now: int) -> KeyRecord:
        """A new KMS key, tagged; readers see it once commit() gives it an alias.

        Raises: KeyStoreError for an algorithm KMS cannot serve or a KMS failure.
        """
        key_type = KMS_KEY_TYPES.get(alg)
        if key_type is None:
            raise KeyStoreError(
                f"algorithm {alg} is not available with backend kms "
                f"(choose {', '.join(sorted(KMS_KEY_TYPES))})"
            )
        tags = {
            TAG + "keyring": self._prefix,
            TAG + "alg": alg,
            TAG + "created-at": str(now),
            TAG + "state": KeyState.NEXT.value,
        }
        try:
            key_id = self._client.create_key(
                key_type.key_spec, "SIGN_VERIFY", tags, f"Sekisho signing key ({self._prefix})"
            )
        except KmsError as exc:
            raise KeyStoreError(f"cannot create a KMS key: {exc}") from exc
        kid = self._kid_of(key_id, alg)
        self._pending[kid] = key_id
        return KeyRecord(kid=kid, alg=alg, state=KeyState.NEXT, created_at=now)

    def commit(self, before: Sequence[KeyRecord], after: Sequence[KeyRecord]) -> None:
        """Apply the changed records to KMS in reader-safe order (call under locked()).

        Raises: KeyStoreError on a KMS failure or a concurrent change.
        """
        previous = {r.kid: r for r in before}
        changed = [r for r in after if previous.get(r.kid) != r]
        changed.sort(key=lambda r: r.state is not KeyState.ACTIVE)  # promotions first
        try:
            for alias in self._stale:
                self._client.delete_alias(alias)
            self._stale = []
            for record in changed:
                self._apply(record)
        except KmsAliasExistsError as exc:
            raise KeyStoreError(
                f"another process changed the keys under alias/{self._prefix}/ at the same "
                "time; nothing else was changed, run the command again"
            ) from exc
        except KmsError as exc:
            raise KeyStoreError(f"KMS refused a key change: {exc}") from exc

    @contextlib.contextmanager
    def locked(self, wait_seconds: float = 30.0) -> Iterator[None]:
        """The keystore lock (kmslock.py), held on one of the keys under the prefix.

        Raises: KeyStoreLockedError, KeyStoreError.
        """
        members = self._scan()
        if not members:
            yield  # `keys init` on an empty prefix: there is no key to hang the lock on yet
            return
        lock = KmsAliasLock(self._client, self._alias_name(LOCK_NAME), self._clock, self._rng)
        with lock.held(min(m.key_id for m in members.values()), wait_seconds):
            yield

    # --- reading ------------------------------------------------------------------------

    def _scan(self) -> dict[str, _Member]:
        try:
            aliases = self._client.list_aliases()
        except KmsError as exc:
            if exc.retryable:
                raise KeyStatesUnreachableError(f"cannot list KMS aliases: {exc}") from exc
            raise KeyStoreError(f"cannot list KMS aliases: {exc}") from exc
        members: dict[str, _Member] = {}
        stale: list[str] = []
        for alias in aliases:
            member = self._parse(alias)
            if member is None:
                continue
            current = members.get(member.kid)
            if current is not None and current.key_id != member.key_id:
                raise KeyStoreError(f"kid {member.kid} names two KMS keys under {alias.name}")
            if current is None or _ORDER[member.state] > _ORDER[current.state]:
                if current is not None:
                    stale.append(self._alias_name(f"{current.state.value}/{current.kid}"))
                members[member.kid] = member
            else:
                stale.append(alias.name)
        self._members, self._stale = members, stale
        return members

    def _parse(self, alias: KmsAlias) -> _Member | None:
        base = self._alias_name("")
        if not alias.name.startswith(base) or alias.name == self._alias_name(LOCK_NAME):
            return None
        state_name, _, kid = alias.name[len(base) :].partition("/")
        try:
            state = KeyState(state_name)
        except ValueError:
            state = None
        if state is None or not is_valid_kid(kid):
            raise KeyStoreError(f"KMS alias {alias.name} is not {base}<state>/<kid>")
        return _Member(kid=kid, key_id=alias.key_id, state=state)

    def _record(self, member: _Member) -> KeyRecord:
        tags = self._tags.get((member.key_id, member.state))
        if tags is None:
            tags = self._client.list_tags(member.key_id)
            self._tags[(member.key_id, member.state)] = tags
        try:
            return KeyRecord(
                kid=member.kid,
                alg=tags[TAG + "alg"],
                state=member.state,
                created_at=int(tags[TAG + "created-at"]),
                activated_at=int(tags.get(TAG + "activated-at", "0")),
                retire_after=int(tags.get(TAG + "retire-after", "0")),
            )
        except (KeyError, ValueError) as exc:
            raise KeyStoreError(
                f"KMS key {member.key_id} (kid {member.kid}) has bad tags: {exc}"
            ) from exc

    def _public_key(self, key_id: str, alg: str, kid: str) -> PublicKey:
        key = self._public_keys.get(key_id)
        if key is None:
            if self._kid_of(key_id, alg) != kid:
                raise KeyStoreError(f"KMS key {key_id} does not hold the key of kid {kid}")
            key = self._public_keys[key_id]
        return key

    def _kid_of(self, key_id: str, alg: str) -> str:
        try:
            der = self._client.get_public_key(key_id)
        except KmsError as exc:
            raise KeyStoreError(f"cannot read the public key of KMS key {key_id}: {exc}") from exc
        key = public_key_from_der(der, alg)
        self._public_keys[key_id] = key
        return thumbprint(public_jwk(key))

    # --- writing ------------------------------------------------------------------------

    def _apply(self, record: KeyRecord) -> None:
        member = self._members.get(record.kid)
        key_id = member.key_id if member else self._pending[record.kid]
        if record.state in _GONE and (member is None or member.state not in _GONE):
            # A key leaving the JWKS cannot sign, even for a stale replica. Disabled before its
            # alias moves: the other way round, a failed DisableKey (throttled past the retries,
            # or an operator role without kms:DisableKey) left a revoked key enabled, and a
            # rerun of `keys revoke` only said "already revoked". Until the alias moves, readers
            # still take the key for what it was (promotions are applied first, so it no
            # longer signs), and a rerun finds it not yet revoked and finishes the change.
            self._client.disable_key(key_id)
        self._client.tag(key_id, _tags_of(record))
        if member is None or member.state is not record.state:
            self._client.create_alias(
                self._alias_name(f"{record.state.value}/{record.kid}"), key_id
            )
            if member is not None:
                self._client.delete_alias(self._alias_name(f"{member.state.value}/{record.kid}"))
        self._members[record.kid] = _Member(record.kid, key_id, record.state)
        self._pending.pop(record.kid, None)

    def _alias_name(self, rest: str) -> str:
        return f"alias/{self._prefix}/{rest}"


def _tags_of(record: KeyRecord) -> dict[str, str]:
    return {
        TAG + "alg": record.alg,
        TAG + "state": record.state.value,
        TAG + "created-at": str(record.created_at),
        TAG + "activated-at": str(record.activated_at),
        TAG + "retire-after": str(record.retire_after),
    }


def _one_active(records: list[KeyRecord]) -> list[KeyRecord]:
    """While a promotion is half applied two keys are active: the one activated last signs."""
    active = [r for r in records if r.state is KeyState.ACTIVE]
    if len(active) <= 1:
        return records
    newest = max(active, key=lambda r: (r.activated_at, r.created_at, r.kid))
    log.info("kms_promotion_in_progress", extra={"active": newest.kid})
    return [
        replace(r, state=KeyState.RETIRING) if r in active and r is not newest else r
        for r in records
    ]
