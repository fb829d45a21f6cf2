"""CPU of one client-assertion signature verification per key type (sizes [client_auth]
assertion_* budgets; bench/results/assertion_gate.md). Bounded: a few seconds in all.

    .venv/bin/python bench/assertion_verify_cost.py
"""

import statistics
import time
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import get_default_algorithms

ROUNDS, PER_ROUND = 5, 1000
MESSAGE = b"x" * 400  # about a client assertion's signing input


def _keys() -> dict[str, Any]:
    return {
        "ES256": ec.generate_private_key(ec.SECP256R1()),
        "ES384": ec.generate_private_key(ec.SECP384R1()),
        "ES512": ec.generate_private_key(ec.SECP521R1()),
        "RS256-2048": rsa.generate_private_key(65537, 2048),
        "RS256-4096": rsa.generate_private_key(65537, 4096),
        "PS256-2048": rsa.generate_private_key(65537, 2048),
        "EdDSA": ed25519.Ed25519PrivateKey.generate(),
    }


def main() -> None:
    algorithms = get_default_algorithms()
    for name, key in _keys().items():
        algorithm = algorithms[name.split("-")[0]]
        signature, public = algorithm.sign(MESSAGE, key), key.public_key()
        rounds = []
        for _ in range(ROUNDS):
            started = time.process_time()
            for _ in range(PER_ROUND):
                algorithm.verify(MESSAGE, public, signature)
            rounds.append((time.process_time() - started) / PER_ROUND * 1e6)
        print(f"{name:11s} median {statistics.median(rounds):6.1f} us CPU per verification")


if __name__ == "__main__":
    main()
