"""gRPC server assembly: the exchange service, health checking and reflection on one listener."""

import asyncio
import contextvars
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from envoy.service.auth.v3 import external_auth_pb2_grpc as ext_authz_grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc

from sekisho._gen.sekisho.v1 import token_exchange_pb2 as pb
from sekisho._gen.sekisho.v1 import token_exchange_pb2_grpc as pb_grpc
from sekisho.errors import listen_failed
from sekisho.rpc import acceptors as hot_acceptors
from sekisho.rpc.admission_gate import AdmissionGate
from sekisho.rpc.ext_authz import SERVICE_NAME as EXT_AUTHZ_SERVICE_NAME
from sekisho.rpc.ext_authz import ExtAuthzServicer
from sekisho.rpc.interceptors import ErrorMappingInterceptor
from sekisho.rpc.servicer import TokenExchangeServicer
from sekisho.rpc.stream_bound import BoundedHealthServicer, BoundedReflectionServicer, OpenCalls
from sekisho.tls import TlsMaterial

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["TokenExchangeService"].full_name
EXCHANGE_METHOD = f"/{SERVICE_NAME}/ExchangeToken"


def _bind(server: grpc.aio.Server, listen: str, tls: TlsMaterial | None) -> int:
    """Raises: ConfigError when grpc cannot listen there (its own RuntimeError names no cause)."""
    try:
        if tls is None:
            return int(server.add_insecure_port(listen))
        credentials = grpc.ssl_server_credentials(
            [(tls.private_key, tls.certificate_chain)],
            root_certificates=tls.client_ca,
            require_client_auth=tls.require_client_auth,
        )
        return int(server.add_secure_port(listen, credentials))
    except RuntimeError as exc:  # "Failed to bind to address …; set GRPC_VERBOSITY=debug …"
        raise listen_failed(
            "server.grpc_listen",
            listen,
            "the port is in use (another Sekisho running?) or the address is not this host's",
        ) from exc


@dataclass
class GrpcServer:
    """A started server and the port it bound (port 0 → the kernel's choice)."""

    server: grpc.aio.Server
    port: int
    health: health.aio.HealthServicer
    acceptors: hot_acceptors.Acceptors | None = None

    async def stop(self, grace: float | None) -> None:
        """Drain in-flight calls for up to `grace` seconds (None: cancel them now), then end
        the acceptors."""
        await self.server.stop(grace)
        if self.acceptors is not None:
            await self.acceptors.stop()

    async def set_serving(self, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", SERVICE_NAME):
            await self.health.set(name, status)

    async def follow_readiness(self, ready: Callable[[], bool], interval: float = 0.5) -> None:
        """Run until cancelled: gRPC health says what /readyz says (keys and policy loaded).

        Started once the service is up; cancelled before shutdown sets NOT_SERVING for good.
        """
        serving: bool | None = None
        while True:
            now = ready()
            if now != serving:
                await self.set_serving(now)
                serving = now
            await asyncio.sleep(interval)


async def create_grpc_server(
    servicer: TokenExchangeServicer,
    listen: str,
    request_id_var: contextvars.ContextVar[str],
    ext_authz: ExtAuthzServicer | None = None,
    *,
    tls: TlsMaterial | None = None,
    max_message_bytes: int,
    reuse_port: bool = False,
    options: Sequence[tuple[str, Any]] = (),
    gate: AdmissionGate | None = None,
    acceptors: int = 0,
) -> GrpcServer:
    """Build and start the server on `listen` (host:port); `ext_authz` adds Envoy's Check.

    `max_message_bytes` is `[limits] grpc_max_message_bytes`. `tls` serves TLS (requiring a
    client certificate when its `require_client_auth` says so).
    `reuse_port` lets several worker processes bind one port (SO_REUSEPORT); off, a second
    server on a busy port fails to bind instead of silently sharing it. `options` adds grpc core
    channel arguments (the [grpc] limits: streams per connection, keepalive enforcement).
    `gate` (admission_gate, over EXCHANGE_METHOD) refuses ExchangeToken calls the worker cannot
    serve in time as they arrive, before the request is decoded. `acceptors` ([grpc]
    acceptors) more calls of ExchangeToken and of Envoy's Check are requested from grpc core at
    once (acceptors.py).
    """
    interceptors: list[grpc.aio.ServerInterceptor] = [
        ErrorMappingInterceptor(request_id_var, passthrough=frozenset({EXT_AUTHZ_SERVICE_NAME}))
    ]
    if gate is not None:  # first: it runs before the error mapping's per-call work
        interceptors.insert(0, gate)
    server = grpc.aio.server(
        interceptors=interceptors,
        options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.so_reuseport", int(reuse_port)),
            *options,
        ],
    )
    # Registered through the acceptors' recorder: they run the same handler objects (acceptors.py)
    hot = hot_acceptors.register_servicer(
        pb_grpc.add_TokenExchangeServiceServicer_to_server, servicer, server
    )
    hot = {EXCHANGE_METHOD: hot[EXCHANGE_METHOD]}
    open_calls = OpenCalls()  # Watch and reflection streams stay open: bounded (stream_bound.py)
    health_servicer = BoundedHealthServicer(open_calls)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names: tuple[str, ...] = (
        SERVICE_NAME,
        health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
    )
    if ext_authz is not None:
        hot |= hot_acceptors.register_servicer(
            ext_authz_grpc.add_AuthorizationServicer_to_server, ext_authz, server
        )
        names = (*names, EXT_AUTHZ_SERVICE_NAME)
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(
        BoundedReflectionServicer((*names, reflection.SERVICE_NAME), open_calls), server
    )
    port = _bind(server, listen, tls)
    if port == 0:
        raise OSError(f"cannot bind gRPC listener {listen}")
    await server.start()
    grpc_server = GrpcServer(
        server=server,
        port=port,
        health=health_servicer,
        acceptors=hot_acceptors.start(server, hot, interceptors, acceptors),
    )
    await grpc_server.set_serving(False)
    return grpc_server
