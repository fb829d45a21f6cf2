"""The SDK's JwksClient lives in its own module (verify/jwks_client.py), apart from the JwksCache
the server builds for its IdPs (verify/jwks.py); `sekisho.verify` exports it as before."""

import inspect

import sekisho.verify
from sekisho.verify import jwks, jwks_client


def test_the_sdk_client_is_exported_from_its_own_module() -> None:
    assert sekisho.verify.JwksClient is jwks_client.JwksClient
    assert "JwksClient" in sekisho.verify.__all__


def test_the_sdk_client_still_waits_one_second_for_an_unknown_kid_by_default() -> None:
    wait = inspect.signature(jwks_client.JwksClient).parameters["unknown_kid_wait_seconds"]
    assert wait.default == jwks_client.UNKNOWN_KID_WAIT_SECONDS == 1.0


def test_the_cache_module_carries_no_sdk_client() -> None:
    # One concern per module: the cache the server uses names none of the SDK's errors.
    assert not hasattr(jwks, "JwksClient")
    assert not hasattr(jwks, "VerifierUnavailableError")
