"""The slice of OPA's REST API Sekisho uses, over opa-python-client's AsyncOpaClient.

One aiohttp session (kept-alive connections) per engine; every request is bounded by the
session's total timeout and never retried here: a decision that cannot be made in time is
UNAVAILABLE, and the engine's supervisor decides when to try OPA again. Library and transport
errors become the three typed errors below (https://www.openpolicyagent.org/docs/rest-api).
"""

import asyncio
import json
import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from opa_client import AsyncOpaClient
from opa_client.errors import (
    ConnectionsError,
    DeletePolicyError,
    PatchDataError,
    RegoParseError,
    TypeException,
)

from sekisho.errors import ConfigError

# Transport-level failures: OPA did not give a usable answer.
_UNAVAILABLE = (aiohttp.ClientError, asyncio.TimeoutError, ConnectionsError, ValueError)


class OpaUnavailableError(Exception):
    """OPA did not answer in time, or answered something that is not OPA's API."""


class OpaRejectedError(Exception):
    """OPA refused a policy or data write (the message carries OPA's compile errors)."""


class OpaEvaluationError(Exception):
    """OPA failed to evaluate the query for this input (HTTP 500, e.g. eval_conflict_error)."""


@dataclass(frozen=True, slots=True)
class OpaAnswer:
    """A query's value (None when undefined) and OPA's decision id ("" without decision logs)."""

    result: Any
    decision_id: str


def client_address(url: str) -> tuple[str, int, bool]:
    """`http(s)://host[:port]` → (host, port, tls) as AsyncOpaClient takes them."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    tls = parts.scheme == "https"
    port = parts.port or (443 if tls else 80)
    return (f"[{host}]" if ":" in host else host), port, tls


def rejection_message(exc: RegoParseError | PatchDataError) -> str:
    """OPA's error text, with each compile error's location (file:row) when it gave one."""
    details = []
    for error in getattr(exc, "errors", None) or []:
        if isinstance(error, dict):
            where = error.get("location") or {}
            place = f"{where.get('file', '')}:{where.get('row', '')}: " if where else ""
            details.append(f"{place}{error.get('code', '')}: {error.get('message', '')}")
    return "; ".join(details) or f"{exc.expression}: {exc.message}"


@dataclass(frozen=True, slots=True)
class OpaPolicy:
    """One module OPA holds: its id, its text and its package path (e.g. ("sekisho", "x"))."""

    id: str
    raw: str
    package: tuple[str, ...]


class _VerifiedClient(AsyncOpaClient):  # type: ignore[misc]
    """AsyncOpaClient whose https session trusts `ca_file` (OPA's own CA), not only the system's."""

    def __init__(self, *args: Any, ssl_context: ssl.SSLContext | None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._ssl_context = ssl_context

    async def _init_session(self) -> None:
        await super()._init_session()
        if self._ssl_context is not None:
            session: aiohttp.ClientSession = getattr(self, "_session")  # noqa: B009 (untyped base)
            await session.close()
            self._connector = aiohttp.TCPConnector(ssl=self._ssl_context)
            self._session = aiohttp.ClientSession(
                headers=self.headers,
                connector=self._connector,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            )


def opa_ssl_context(ca_file: Path | None) -> ssl.SSLContext | None:
    """Verification against `ca_file` (hostname checked). Raises: OSError, ssl.SSLError."""
    if ca_file is None:
        return None
    return ssl.create_default_context(cafile=str(ca_file))


def opa_token(env_name: str) -> str:
    """The bearer token from environment variable `env_name` ("" = none configured).

    Raises: ConfigError when the variable is named but empty (never run unauthenticated by
    accident: OPA would refuse every request, or worse, accept them without a token).
    """
    if not env_name:
        return ""
    token = os.environ.get(env_name, "").strip()
    if not token:
        raise ConfigError(f"config key 'policy.opa_token_env': ${env_name} is empty or unset")
    return token


class OpaApi:
    """Queries, policy writes and data patches against one OPA server.

    `token` is sent as `Authorization: Bearer …` on every request, for an OPA run with
    `--authentication=token --authorization=basic` (docs/operators.md "Securing OPA").
    """

    def __init__(
        self,
        url: str,
        timeout_seconds: float,
        *,
        token: str = "",
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        host, port, tls = client_address(url)
        self.url = url
        self.timeout_seconds = timeout_seconds
        self._token = token
        self._ssl_context = ssl_context
        # retries=0: the library would otherwise sleep and retry inside our time budget;
        # rego_compat is turned off per call, so OPA never receives a rewritten policy.
        self._client = _VerifiedClient(
            host=host,
            port=port,
            ssl=tls,
            retries=0,
            timeout=timeout_seconds,
            token=token or None,
            ssl_context=ssl_context if tls else None,
        )
        self._open = False

    def with_timeout(self, timeout_seconds: float) -> "OpaApi":
        """A second client to the same OPA (same token and CA) with its own session and
        connections, each request bounded by `timeout_seconds` (the supervisor's, so its checks
        neither queue behind decisions for a connection nor share their budget)."""
        return OpaApi(self.url, timeout_seconds, token=self._token, ssl_context=self._ssl_context)

    async def open(self) -> None:
        """Create the HTTP session (inside the running event loop)."""
        if not self._open:
            await self._client.__aenter__()
            self._open = True

    async def close(self) -> None:
        if self._open:
            await self._client.close_connection()
            self._open = False

    async def query(self, path: str, document: dict[str, Any]) -> OpaAnswer:
        """POST /v1/data/{path} with `document` as input.

        Raises: OpaEvaluationError (HTTP 500), OpaUnavailableError.
        """
        try:
            body = await self._client.query_rule(input_data=document, package_path=path)
        except aiohttp.ContentTypeError as exc:
            problem = "OPA answered a query with something other than JSON"
            raise OpaUnavailableError(problem) from exc
        except aiohttp.ClientResponseError as exc:
            if exc.status == 500:
                raise OpaEvaluationError(f"OPA could not evaluate {path}: HTTP 500") from exc
            raise OpaUnavailableError(f"OPA answered HTTP {exc.status} to a query") from exc
        except _UNAVAILABLE as exc:
            raise OpaUnavailableError(f"OPA query failed: {type(exc).__name__}: {exc}") from exc
        if not isinstance(body, dict):
            raise OpaUnavailableError("OPA answered a query with something other than an object")
        decision_id = body.get("decision_id", "")
        return OpaAnswer(
            result=body.get("result"),
            decision_id=decision_id if isinstance(decision_id, str) else "",
        )

    async def bundles(self) -> Any:
        """What OPA records of the bundles it activated (`data.system.bundles`: per bundle its
        manifest, revision included, and the ETag it was downloaded with); None without any.

        Raises: OpaEvaluationError, OpaUnavailableError.
        """
        return (await self.query("system/bundles", {})).result

    async def put_policy(self, policy_id: str, text: str) -> None:
        """PUT /v1/policies/{id}. Raises: OpaRejectedError, OpaUnavailableError."""
        try:
            await self._client.update_policy_from_string(text, policy_id, rego_compat=False)
        except RegoParseError as exc:
            raise OpaRejectedError(f"{policy_id}: {rejection_message(exc)}") from exc
        except (*_UNAVAILABLE, TypeException) as exc:
            raise OpaUnavailableError(f"OPA policy write failed: {exc!r}") from exc

    async def delete_policy(self, policy_id: str) -> None:
        """DELETE /v1/policies/{id}; a policy already gone is fine.

        Raises: OpaRejectedError (e.g. other modules still depend on it), OpaUnavailableError.
        """
        try:
            await self._client.delete_policy(policy_id)
        except DeletePolicyError as exc:
            if exc.expression != "resource_not_found":
                raise OpaRejectedError(f"{policy_id}: {exc.message}") from exc
        except _UNAVAILABLE as exc:
            raise OpaUnavailableError(f"OPA policy delete failed: {exc!r}") from exc

    async def policies(self) -> list[OpaPolicy]:
        """GET /v1/policies with each module's text and package. Raises: OpaUnavailableError."""
        body = await self._get_json("policies")
        try:
            return [_policy(entry) for entry in body["result"]]
        except (KeyError, TypeError, AttributeError) as exc:
            raise OpaUnavailableError("OPA answered the policy listing with a bad shape") from exc

    async def data(self, path: str) -> Any:
        """GET /v1/data/{path} without input (None when undefined).

        Raises: OpaUnavailableError, OpaEvaluationError.
        """
        body = await self._get_json(f"data/{path}")
        return body.get("result") if isinstance(body, dict) else None

    async def ad_hoc(self, query: str) -> list[Any]:
        """POST /v1/query: the bindings of each result of `query`.

        Raises: OpaUnavailableError, OpaEvaluationError.
        """
        url = f"{self._client.root_url}/query"
        try:
            async with self._client._request("POST", url, json={"query": query}) as reply:
                if reply.status in (400, 500):
                    raise OpaEvaluationError(f"OPA could not evaluate a query: HTTP {reply.status}")
                reply.raise_for_status()
                body = await reply.json()
        except aiohttp.ClientResponseError as exc:
            raise OpaUnavailableError(f"OPA answered HTTP {exc.status} to a query") from exc
        except _UNAVAILABLE as exc:
            raise OpaUnavailableError(f"OPA query failed: {exc!r}") from exc
        result = body.get("result") if isinstance(body, dict) else None
        return result if isinstance(result, list) else []

    async def _get_json(self, path: str) -> Any:
        url = f"{self._client.root_url}/{path}"
        try:
            async with self._client._request("GET", url) as reply:
                if reply.status == 500:
                    raise OpaEvaluationError(f"OPA could not evaluate {path}: HTTP 500")
                reply.raise_for_status()
                return await reply.json()
        except aiohttp.ClientResponseError as exc:
            raise OpaUnavailableError(f"OPA answered HTTP {exc.status} to GET {path}") from exc
        except _UNAVAILABLE as exc:
            raise OpaUnavailableError(f"OPA GET {path} failed: {exc!r}") from exc

    async def patch_data(self, operations: list[dict[str, Any]]) -> None:
        """One JSON Patch (RFC 6902) on the root of `data`: OPA applies it in one transaction.

        (The library sends it to /v1/data/, which OPA redirects to /v1/data with a 301 that
        aiohttp follows keeping the method and body.)
        Raises: OpaRejectedError (e.g. data conflicting with a rule), OpaUnavailableError.
        """
        try:
            await self._client.patch_data("", operations)
        except PatchDataError as exc:
            raise OpaRejectedError(f"data: {exc.expression}: {exc.message}") from exc
        except (*_UNAVAILABLE, json.JSONDecodeError) as exc:
            raise OpaUnavailableError(f"OPA data write failed: {exc!r}") from exc

    async def remove_data(self, key: str) -> None:
        """Remove the top-level document `key`; one already gone is fine.

        Raises: OpaRejectedError, OpaUnavailableError.
        """
        try:
            await self._client.patch_data("", [{"op": "remove", "path": "/" + pointer(key)}])
        except PatchDataError as exc:
            if exc.expression != "resource_not_found":
                raise OpaRejectedError(f"data.{key}: {exc.message}") from exc
        except _UNAVAILABLE as exc:
            raise OpaUnavailableError(f"OPA data write failed: {exc!r}") from exc


def _policy(entry: dict[str, Any]) -> OpaPolicy:
    path = entry["ast"]["package"]["path"]
    package = tuple(str(term["value"]) for term in path[1:])  # path[0] is `data`
    return OpaPolicy(id=str(entry["id"]), raw=str(entry["raw"]), package=package)


def pointer(key: str) -> str:
    """One JSON Pointer reference token (RFC 6901 §4): `~` → `~0`, `/` → `~1`."""
    return key.replace("~", "~0").replace("/", "~1")
