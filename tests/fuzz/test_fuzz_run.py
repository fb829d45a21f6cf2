"""`make test` runs the atheris token fuzzer for a bounded time (FUZZ_CI_SECONDS, default 10) on
a copy of the committed seed corpus, and checks that the fuzz target lets only typed errors
through (so a finding would surface as a crash rather than be swallowed)."""

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sekisho.errors import InvalidTokenError

from tests.fuzz.token_target import Target

FUZZ_DIR = Path(__file__).resolve().parent
SECONDS = int(os.environ.get("FUZZ_CI_SECONDS", "10"))


def test_token_fuzzer_runs_clean_for_a_bounded_time(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    shutil.copytree(FUZZ_DIR / "corpus", corpus)
    done = subprocess.run(
        [sys.executable, str(FUZZ_DIR / "fuzz_tokens.py"), f"-max_total_time={SECONDS}",
         f"-artifact_prefix={tmp_path}/", "-print_final_stats=1", str(corpus)],
        capture_output=True,
        text=True,
        timeout=SECONDS + 60,
        check=False,
    )  # fmt: skip
    crashes = sorted(p.name for p in tmp_path.glob("crash-*"))
    assert done.returncode == 0 and not crashes, done.stderr[-3000:]
    runs = re.search(r"Done (\d+) runs", done.stderr)
    assert runs is not None and int(runs.group(1)) > 1000, done.stderr[-3000:]


@pytest.fixture
def target() -> Iterator[Target]:
    fuzz_target = Target()
    yield fuzz_target
    fuzz_target.close()


def test_seed_corpus_honest_token_verifies_and_hostile_ones_are_typed_errors(
    target: Target,
) -> None:
    seeds = {p.name: p.read_bytes() for p in (FUZZ_DIR / "corpus").iterdir()}
    target.one_input(seeds["honest-rs256"])  # verifies: no exception at all
    token, kind = target.token(seeds["alg-none"])
    with pytest.raises(InvalidTokenError):
        target.loop.run_until_complete(target.verifier.verify(token, kind))


def test_fuzz_target_lets_an_untyped_exception_escape(
    target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The target must not swallow what it should report: a ValueError escaping the verifier
    (the class of bug `10**400` in exp once was) reaches atheris as a crash."""

    async def broken(token: str, token_type: str) -> None:
        raise ValueError("escaped")

    monkeypatch.setattr(target.verifier, "verify", broken)
    with pytest.raises(ValueError, match="escaped"):
        target.one_input(b"\x00a.b.c")
