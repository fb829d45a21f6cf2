"""The fuzz target behind tests/fuzz/fuzz_tokens.py, importable without atheris (so pytest can
check that it lets only typed errors through). Input format: see fuzz_tokens.py."""

import asyncio
import base64
import contextlib

from jwt.algorithms import ECAlgorithm
from sekisho.constants import TOKEN_TYPE_ACCESS_TOKEN, TOKEN_TYPE_ID_TOKEN
from sekisho.errors import InvalidRequestError
from sekisho.identity.verifier import TokenVerifier, TrustedIssuer
from sekisho.verify.jwks import JwksCache

from tests.bounds import max_act_depth
from tests.fakes.clock import FakeClock
from tests.fakes.fetcher import FakeFetcher
from tests.fakes.idp import TestIdp
from tests.harness import IDP_A, SEKISHO_ISSUER, issuer_configs


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class Target:
    """One verifier and event loop for the whole run."""

    def __init__(self) -> None:
        self.clock, self.idp = FakeClock(), TestIdp(IDP_A)
        config = issuer_configs()[0]
        fetcher = FakeFetcher({config.jwks_uri: self.idp.jwks()})
        cache = JwksCache(IDP_A, fetcher, self.clock, jwks_uri=config.jwks_uri)
        self.verifier = TokenVerifier(
            {IDP_A: TrustedIssuer(config=config, jwks=cache)},
            self.clock,
            own_issuer=SEKISHO_ISSUER,
            leeway_seconds=30,
            max_token_bytes=16384,
            max_act_depth=max_act_depth(),
        )
        self.loop = asyncio.new_event_loop()

    def token(self, data: bytes) -> tuple[str, str]:
        mode, body = (data[0] % 3, data[1:]) if data else (0, b"")
        if mode != 2:
            kind = TOKEN_TYPE_ID_TOKEN if mode == 0 else TOKEN_TYPE_ACCESS_TOKEN
            return body.decode("latin-1"), kind
        header, _, payload = body.partition(b"\xff")
        message = f"{_b64(header)}.{_b64(payload)}"
        signature = self.idp_sign(message.encode("ascii"))
        return f"{message}.{_b64(signature)}", TOKEN_TYPE_ID_TOKEN

    def idp_sign(self, message: bytes) -> bytes:
        return ECAlgorithm(ECAlgorithm.SHA256).sign(message, self.idp.ec_key)

    def close(self) -> None:
        self.loop.close()

    def one_input(self, data: bytes) -> None:
        token, kind = self.token(data)
        with contextlib.suppress(InvalidRequestError):
            self.loop.run_until_complete(self.verifier.verify(token, kind))
