"""Coverage-guided fuzzing (atheris/libFuzzer) of the inbound token-parsing path: jose.py's strict
compact-JWS parser and TokenVerifier.verify, wired to IdP A's fixture keys and a fake clock.

Input format (also the seed corpus's, tests/fuzz/corpus/): the first byte picks the mode.
  0x00 + bytes   → the bytes (latin-1) are the token, verified as an id_token.
  0x01 + bytes   → the same, verified as an access_token.
  0x02 + H 0xff P → header bytes H and payload bytes P, signed ES256 with IdP A's real key, so
                   the fuzzer explores the claim and header rules past the signature check.
The only acceptable outcomes are a verified token or InvalidRequestError (incl.
InvalidTokenError); any other exception is a finding and stops the run with a crash file.

Run: `make fuzz` (FUZZ_SECONDS, default 60). Direct: python tests/fuzz/fuzz_tokens.py
-max_total_time=60 -artifact_prefix=var/fuzz/ var/fuzz/corpus
"""

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root, for tests.*

with atheris.instrument_imports(include=["sekisho"]):
    from tests.fuzz.token_target import Target


def main() -> None:
    target = Target()
    atheris.Setup(sys.argv, target.one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
