"""Instructions (callgrind Ir, deterministic) of the JWS signing input as signing/jws.py
builds it: header + "." + claims, `--calls` times, for the encoder of the checkout given (base)
and this one (new). Run each under callgrind, the marker toggling collection:

    valgrind --tool=callgrind --toggle-collect=functools_reduce --dump-after=functools_reduce \\
        .venv/bin/python bench/hotpath5_encoder_ir.py BASE_CHECKOUT
(dump 1: base, dump 2: new; Ir per call = dump total / calls)
"""

import functools
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent.parent
CLAIMS = {
    "iss": "http://127.0.0.1:8080",
    "sub": "user17",
    "aud": "https://as-0417.example.com",
    "client_id": "client-0417",
    "jti": "AAECAwQFBgcICQoLDA0ODw",
    "iat": 1800000000,
    "exp": 1800000300,
    "scope": "files.read files.write mail.read",
    "auth_time": 1799999000,
}
KID, TYP = "hV9MJGc3JQlcnuVCrXARyxFog53nkYQ9mukPlTq27mM", "oauth-id-jag+jwt"


def _load(checkout: Path, name: str) -> ModuleType:
    # signing/jws.py since session 11; minting/encoder.py in earlier checkouts (a base for A/B).
    path = checkout / "server/sekisho/signing/jws.py"
    if not path.exists():
        path = checkout / "server/sekisho/minting/encoder.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _signing_input(module: ModuleType, encoder: Any) -> bytes:
    if hasattr(encoder, "_header"):
        header = encoder._header("ES256", KID, TYP)
    else:
        header = module._b64url(module._json({"alg": "ES256", "kid": KID, "typ": TYP}))
    return bytes(header + b"." + module._b64url(module._json(CLAIMS)))


def main(base: Path, calls: int) -> None:
    sides = {"base": _load(base, "encoder_base"), "new": _load(HERE, "encoder_new")}
    encoders = {name: module.JwsEncoder() for name, module in sides.items()}
    outputs = {name: _signing_input(sides[name], encoders[name]) for name in sides}
    assert outputs["base"] == outputs["new"], "the signing inputs differ"
    for name, module in sides.items():
        encoder = encoders[name]
        functools.reduce(
            lambda _a, _b, m=module, e=encoder: [_signing_input(m, e) for _ in range(calls)],
            [0, 1],
        )
        print(f"dump {name}: {calls} signing inputs")


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 2000)
