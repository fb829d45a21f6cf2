"""Settings that bound what unauthenticated or excess load can cost (issue 14): [http], [grpc],
[client_auth] and [overload].

Every default is documented in config/example.toml and explained in docs/operations.md
("Overload and abuse bounds").
"""

from pydantic import Field

from sekisho.config.section import Section


class HttpLimitsConfig(Section):
    """[http]: what one HTTP connection may hold and for how long."""

    # A connection must complete a request's headers this long after it opens or after its
    # first byte of a new request (slowloris); aiohttp has no header timeout of its own.
    header_timeout_seconds: float = Field(default=10.0, gt=0)
    # The whole request body must arrive within this (slow POST).
    body_timeout_seconds: float = Field(default=10.0, gt=0)
    # An idle keep-alive connection is closed after this.
    keepalive_timeout_seconds: float = Field(default=15.0, gt=0)
    # A connection is closed after this many requests (keep-alive limit; 0 = unlimited).
    max_requests_per_connection: int = Field(default=1000, ge=0)
    # Open connections per worker, and per peer address; beyond them a new one is closed at once.
    # Both count connections from their TCP accept, TLS handshakes in progress included.
    max_connections: int = Field(default=1024, ge=1)
    max_connections_per_peer: int = Field(default=64, ge=1)
    # New connections accepted per second (token buckets), per worker and per peer address; one
    # more is closed at once (a reset), before any TLS work. A TLS handshake costs ~1.6 ms of the
    # event loop's CPU (P-256 certificate; RSA-2048 ~1.9 ms), where a refusal costs ~0.03 ms: a
    # peer opening and dropping connections in a loop stalled every caller, gRPC's included
    # (bench/results/handshake_flood.md). 100/s is at most ~1/6 of a core of handshakes per
    # worker, however many addresses send them. A peer's burst equals max_connections_per_peer,
    # so a pool may open every connection it may hold at once; 20/s per peer is far more than a
    # client that keeps its connections alive opens.
    new_connections_per_second: float = Field(default=100.0, gt=0)
    new_connections_burst: int = Field(default=128, ge=1)
    new_connections_per_second_per_peer: float = Field(default=20.0, gt=0)
    new_connections_burst_per_peer: int = Field(default=64, ge=1)
    # TLS handshakes in progress per worker (from the TCP accept, so connections that have not
    # sent their ClientHello yet count); one more connection is closed at once.
    max_handshakes: int = Field(default=256, ge=1)
    # A TLS handshake must finish within this (a connection that never sends its ClientHello).
    handshake_timeout_seconds: float = Field(default=10.0, gt=0)


class GrpcLimitsConfig(Section):
    """[grpc]: HTTP/2 limits of the gRPC listener (grpc core channel arguments)."""

    # Streams (calls) at once on one connection (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS).
    # Also the cheapest shedding there is: streams beyond it are refused by grpc core
    # (REFUSED_STREAM, RFC 9113 §8.7: not processed, safe to retry) before any Python runs, and
    # per connection, so one flooding connection cannot crowd out the others (bench/results).
    # 16: a flooding connection then has at most 16 calls inside the worker, so another
    # caller's call waits behind at most 16 of them in grpc core's queue (session 4: polite
    # p99 ~0.1 s at 16-32 instead of 0.55-0.8 s at 128, same goodput), and closed-loop callers
    # on up to max_pending_calls / 16 = 4 connections cannot fill the pending bound below (at 32,
    # 256 callers on 4 connections held 128 calls and ~25 % were refused by it; session 6); a
    # well-behaved client queues the excess itself (HTTP/2 stream flow control) or opens more
    # connections. One worker runs a few exchanges at once (concurrency.py), so 16 per
    # connection still keeps it busy; an I/O-bound setup (OPA server, KMS) whose limit grows
    # past 16 needs callers on several connections (Envoy's pool opens them) or a higher value.
    max_concurrent_streams: int = Field(default=16, ge=1)
    # Calls grpc core holds for this worker before its event loop has taken them (a saturated
    # loop takes new calls only as fast as it frees up). Beyond this many, grpc core refuses a
    # new call with a rising probability, and always beyond 4 times as many: an answer in
    # microseconds, in C, with no Python run (clients see CANCELLED), where a refusal in Python
    # costs ~0.3 of an exchange, so that refusing the excess of an open-loop flood does not
    # itself eat the core. Calls within it are queued, then screened and admitted in Python
    # (docs/operations.md, "Overload"). 64: what 4 connections' streams (max_concurrent_streams)
    # can hold, so closed-loop saturation on up to 4 connections is not refused here; an
    # open-loop flood on many connections is (session 5, bench/results/overload.md: 5R goodput
    # 9 % of R without it, 55-63 % with 8-64).
    # 0 = grpc core's own, far larger bounds.
    max_pending_calls: int = Field(default=64, ge=0)
    # Calls of ExchangeToken (and of Envoy's Check) requested from grpc core at once beyond the
    # one grpc.aio asks for (rpc/acceptors.py): a call then reaches Sekisho's fair queue and
    # deadline screening as it arrives instead of waiting in grpc core's FIFO for the event loop
    # to ask again (bench/results/acceptors_session14.md). 0 = grpc.aio's own loop only.
    acceptors: int = Field(default=4, ge=0, le=256)
    # The server pings an idle client after this and drops it without an answer in the timeout.
    keepalive_time_seconds: float = Field(default=60.0, gt=0)
    keepalive_timeout_seconds: float = Field(default=20.0, gt=0)
    # Clients pinging more often than this get GOAWAY (ENHANCE_YOUR_CALM) after 2 strikes.
    min_ping_interval_seconds: float = Field(default=10.0, ge=0)
    # A connection with no call for this long is closed (0 = never).
    max_connection_idle_seconds: float = Field(default=600.0, ge=0)
    # A new connection must finish its handshake (TLS when TLS, then HTTP/2's preface and
    # settings) within this, or grpc core closes it; grpc core's own default is 120 s, so a
    # client connecting and sending nothing held a descriptor that long, and nothing bounds gRPC
    # connections per peer (bench/results/handshake_flood.md).
    handshake_timeout_seconds: float = Field(default=10.0, gt=0)
    # A call's request message must arrive within this after the call starts, or the call is
    # refused invalid_request (rpc/admission_gate.py): grpc waits for it until the client's
    # deadline, and a client may set none, so a call opened and never sent stayed open for good
    # (the HTTP listener's body_timeout_seconds, for gRPC; red team session 19).
    message_timeout_seconds: float = Field(default=10.0, gt=0)


class ClientAuthLimitsConfig(Section):
    """[client_auth]: bounds on HTTP Basic client-secret checks (argon2id), applied before any
    hashing, and on private_key_jwt assertions, applied before any signature work; to known and
    unknown client ids alike."""

    # Threads hashing secrets, off the event loop; also how many checks run at once.
    hash_threads: int = Field(default=1, ge=1)
    # Checks running or waiting for a thread, per worker and per peer address.
    max_concurrent: int = Field(default=4, ge=1)
    max_concurrent_per_peer: int = Field(default=2, ge=1)
    # Checks started per second (token buckets), per worker and per peer address. One argon2id
    # check (64 MiB, t=3) costs ~0.1-0.3 s of CPU: 2/s is at most about half a core.
    rate_per_second: float = Field(default=2.0, gt=0)
    burst: int = Field(default=4, ge=1)
    rate_per_second_per_peer: float = Field(default=1.0, gt=0)
    burst_per_peer: int = Field(default=2, ge=1)
    # private_key_jwt assertions started per second (token buckets), per worker and per peer
    # address, checked before the assertion is parsed or any key is looked up. One signature
    # verification costs 0.03 ms (RS256) to 0.1 ms (ES256) of CPU, 0.7-0.8 ms for ES384/ES512
    # (bench/results/assertion_gate.md): 300/s is at most ~3 % of a core with ES256 keys and
    # ~23 % with ES384, far above what JWT clients need (one assertion per token request).
    assertion_rate_per_second: float = Field(default=300.0, gt=0)
    assertion_burst: int = Field(default=300, ge=1)
    assertion_rate_per_second_per_peer: float = Field(default=100.0, gt=0)
    assertion_burst_per_peer: int = Field(default=100, ge=1)


class OverloadConfig(Section):
    """[overload]: the adaptive admission of exchanges (sekisho/admission.py)."""

    # false: every exchange runs at once (no queue, no shedding; token buckets still apply).
    enabled: bool = True
    # Longest an exchange may wait for a slot (predicted at arrival; also the most a standing
    # backlog inside grpc may hold a call before late arrivals are refused: standing_queue.py).
    max_queue_delay_seconds: float = Field(default=2.0, gt=0)
    # Exchanges waiting per worker, and per caller, beyond which one more is refused at once.
    max_queue: int = Field(default=1024, ge=0)
    max_queue_per_caller: int = Field(default=512, ge=0)
    # Bounds of the adaptive concurrency limit (exchanges running at once per worker).
    min_concurrency: int = Field(default=1, ge=1)
    max_concurrency: int = Field(default=64, ge=1)
    # Latency the gradient compares against: the limit shrinks when exchanges take longer than
    # this factor times the fastest recent one.
    latency_tolerance: float = Field(default=2.0, ge=1)
