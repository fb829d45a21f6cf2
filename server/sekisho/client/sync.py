"""`SyncTokenExchangeClient`: the async client driven from threads (WSGI apps, sync agents).

One private event loop in a daemon thread owns the gRPC channel, the cache and the single-flight
table, so every thread shares them exactly as tasks do in the async client.
"""

import asyncio
import threading
from collections.abc import Sequence
from typing import Any

from sekisho.client.cache import ExchangedToken, TokenCache
from sekisho.client.exchanger import TokenExchangeClient
from sekisho.constants import TOKEN_TYPE_ID_JAG, TOKEN_TYPE_ID_TOKEN


class SyncTokenExchangeClient:
    """Same arguments and behaviour as TokenExchangeClient, blocking calls."""

    def __init__(self, target: str, **options: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="sekisho-client", daemon=True
        )
        self._thread.start()
        self._client: TokenExchangeClient = self._run(self._create(target, options))

    @staticmethod
    async def _create(target: str, options: dict[str, Any]) -> TokenExchangeClient:
        return TokenExchangeClient(target, **options)

    def _run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    @property
    def cache(self) -> TokenCache:
        return self._client.cache

    def exchange(
        self,
        subject_token: str,
        audience: str,
        *,
        resources: Sequence[str] = (),
        scopes: Sequence[str] = (),
        requested_token_type: str = TOKEN_TYPE_ID_JAG,
        subject_token_type: str = TOKEN_TYPE_ID_TOKEN,
        actor_token: str = "",
        actor_token_type: str = TOKEN_TYPE_ID_TOKEN,
        deadline_seconds: float | None = None,
    ) -> ExchangedToken:
        """Raises: ExchangeError subclasses."""
        result: ExchangedToken = self._run(
            self._client.exchange(
                subject_token,
                audience,
                resources=resources,
                scopes=scopes,
                requested_token_type=requested_token_type,
                subject_token_type=subject_token_type,
                actor_token=actor_token,
                actor_token_type=actor_token_type,
                deadline_seconds=deadline_seconds,
            )
        )
        return result

    def forget(self, token: ExchangedToken | str) -> bool:
        """TokenExchangeClient.forget: drop a token a downstream refused from the cache."""
        forgotten: bool = self._run(self._forget(token))
        return forgotten

    async def _forget(self, token: ExchangedToken | str) -> bool:
        return self._client.forget(token)  # on the client's loop, like every cache access

    def close(self) -> None:
        if not self._loop.is_running():
            return
        self._run(self._client.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def __enter__(self) -> "SyncTokenExchangeClient":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
