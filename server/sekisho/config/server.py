"""[server] (listeners, TLS, the issuer identity) and [[callers]] (the workloads those listeners
admit, known by their client certificates)."""

import os
import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from sekisho.config.section import Section
from sekisho.urls import is_loopback_host, require_secure_url

# Listen hosts that bind every address, loopback included.
_WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})


class ServerConfig(Section):
    """[server]: listeners and the issuer identity of minted tokens."""

    grpc_listen: str = "127.0.0.1:50051"
    http_listen: str = "127.0.0.1:8080"
    issuer: str = "http://127.0.0.1:8080"
    workers: int = Field(default=1, ge=0)
    # uvloop measured 7-20 % more exchanges per CPU than asyncio's loop (bench/results).
    event_loop: Literal["uvloop", "asyncio"] = "uvloop"
    shutdown_grace_seconds: float = Field(default=10.0, gt=0)
    # TLS on both listeners (docs/operators.md "TLS, mTLS and callers"); paths relative to the
    # config file.
    # Trust http/redis dependencies on loopback although a listener is not on loopback: only
    # when that loopback is private (a pod's sidecar). Logged at start (exposure.py).
    allow_loopback_dependencies: bool = False
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    client_ca_file: Path | None = None
    # None = computed: required whenever a listener is not on loopback (`client_auth_required`).
    require_client_auth: bool | None = None
    # Plaintext on a non-loopback listener, for a service-mesh sidecar that terminates mTLS.
    insecure_plaintext: bool = False
    # Token bucket for callers without their own [[callers]] rate (0 = unlimited); anonymous
    # callers have one each per network address (not per connection), not one shared.
    caller_rate_per_second: float = Field(default=0.0, ge=0)
    caller_burst: int = Field(default=0, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _retired_overload_keys(cls, data: Any) -> Any:
        # The binary in-flight/CPU gate was replaced by [overload] (issue 14): say so by name.
        for key in ("max_in_flight", "max_cpu_fraction"):
            if isinstance(data, dict) and key in data:
                raise ValueError(f"server.{key} was replaced by the [overload] section")
        return data

    @field_validator("issuer")
    @classmethod
    def _issuer_is_url(cls, value: str) -> str:
        require_secure_url(value, "issuer")
        if value.endswith("/"):
            raise ValueError("issuer must not end with '/' (RFC 8414 §2 issuer identifier)")
        return value

    @property
    def worker_count(self) -> int:
        """`workers`, with 0 meaning one per CPU this process may run on."""
        return self.workers or len(os.sched_getaffinity(0))

    @model_validator(mode="after")
    def _fixed_ports_for_workers(self) -> "ServerConfig":
        # Workers share the listeners through SO_REUSEPORT: each binds the same port itself,
        # so "any free port" (0) would give every worker a different one.
        if self.workers != 1:
            for key in ("grpc_listen", "http_listen"):
                if getattr(self, key).rpartition(":")[2] == "0":
                    raise ValueError(f"server.{key} needs a fixed port when workers != 1")
        return self

    @property
    def tls_enabled(self) -> bool:
        """Both listeners terminate TLS with `tls_cert_file` / `tls_key_file`."""
        return self.tls_cert_file is not None

    @property
    def on_loopback(self) -> bool:
        """Both listeners bind a loopback address (nothing else on the network can connect)."""
        return all(
            is_loopback_host(listen.rpartition(":")[0].strip("[]"))
            for listen in (self.grpc_listen, self.http_listen)
        )

    @property
    def client_auth_required(self) -> bool:
        """`require_client_auth`, defaulting to true whenever a listener is not on loopback or
        client_ca_file is set. grpc has no optional client certificate: on loopback with a
        client CA and this false, gRPC never asks for one and a registered agent presenting its
        certificate was served as anonymous (caller "", which `sekisho revoke caller` cannot
        name)."""
        if self.require_client_auth is None:
            return not self.on_loopback or self.client_ca_file is not None
        return self.require_client_auth

    @model_validator(mode="after")
    def _transport_security(self) -> "ServerConfig":
        # Caller identity and minted tokens cross these listeners: plaintext beyond loopback only
        # with the explicit mesh opt-out, and mTLS by default there (issue 7 item 1).
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("set both server.tls_cert_file and server.tls_key_file, or neither")
        if self.tls_enabled and self.insecure_plaintext:
            raise ValueError("server.insecure_plaintext contradicts server.tls_cert_file")
        if self.client_ca_file is not None and not self.tls_enabled:
            raise ValueError("server.client_ca_file needs server.tls_cert_file and tls_key_file")
        if not self.on_loopback and not self.tls_enabled and not self.insecure_plaintext:
            raise ValueError(
                "a listener is not on loopback: set server.tls_cert_file and server.tls_key_file "
                "(or server.insecure_plaintext = true behind an mTLS-terminating sidecar)"
            )
        if self.client_auth_required and not self.tls_enabled:
            raise ValueError(
                "server.require_client_auth needs server.tls_cert_file, tls_key_file and "
                "client_ca_file (behind a sidecar: set server.require_client_auth = false)"
            )
        if self.client_auth_required and self.client_ca_file is None:
            raise ValueError("server.require_client_auth needs server.client_ca_file")
        return self

    @model_validator(mode="after")
    def _issuer_served_over_tls(self) -> "ServerConfig":
        # The JWKS, metadata and status lists are served under the issuer, and every minted
        # token's iss and status uri name it. With TLS on, an http:// issuer naming the HTTP
        # listener itself is a URL nothing can fetch (the listener speaks only TLS): the service
        # started and minted tokens no downstream could verify (newcomer run, session 18: the
        # example's issuer kept while adding tls_cert_file on loopback).
        if not self.tls_enabled:
            return self
        issuer = urlsplit(self.issuer)
        host, _, port = self.http_listen.rpartition(":")
        listens_there = host.strip("[]") in _WILDCARD_HOSTS or is_loopback_host(host.strip("[]"))
        if issuer.scheme == "http" and listens_there and str(issuer.port or 80) == port:
            raise ValueError(
                f"server.issuer {self.issuer} is http, but server.tls_cert_file makes the HTTP "
                f"listener {self.http_listen} speak TLS only: set server.issuer = "
                f'"https://{issuer.netloc}" (tokens, the JWKS and metadata name it)'
            )
        return self


class CallerConfig(Section):
    """One [[callers]] entry: a workload that calls Sekisho, known by its client certificate.

    `id` is the certificate's SPIFFE ID (its one `spiffe://` URI SAN) or, without one, its subject
    CN. `client_ids` maps a downstream audience to the caller's client id there
    (docs/architecture.md §4 client_id rule). `rate_per_second` / `burst` override the server's
    default token bucket.
    """

    id: str
    client_ids: dict[str, str] = Field(default_factory=dict)
    rate_per_second: float = Field(default=0.0, ge=0)
    burst: int = Field(default=0, ge=0)

    @field_validator("id")
    @classmethod
    def _caller_id(cls, value: str) -> str:
        if not value or len(value) > 2048 or not value.isprintable():
            raise ValueError("id must be 1-2048 printable characters (a SPIFFE ID or a CN)")
        if value.startswith("spiffe://") and not re.fullmatch(r"spiffe://[^/?#]+/[^?#]*", value):
            raise ValueError("id looks like a SPIFFE ID but is not spiffe://trust-domain/path")
        return value

    @model_validator(mode="after")
    def _burst_with_rate(self) -> "CallerConfig":
        if self.rate_per_second and self.burst < 1:
            raise ValueError("rate_per_second needs burst >= 1")
        return self
