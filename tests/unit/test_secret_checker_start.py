"""The argon2id seed of the secret checker (http/secrets.py) runs when the first check or decoy
arrives, not while the service starts, and no check or decoy is answered before it is known."""

import asyncio
import time
from collections.abc import Iterator

from sekisho.http.secrets import SecretChecker


def test_constructing_the_checker_hashes_nothing() -> None:
    calls: list[float] = []

    def timer() -> float:
        calls.append(time.perf_counter())
        return calls[-1]

    checker = SecretChecker(1, timer=timer)
    try:
        time.sleep(0.5)  # an eager seed (argon2id, 64 MiB) would have started timing by now
        assert calls == []
        assert checker.typical_seconds > 0  # asking for it seeds it
        assert len(calls) == 2
    finally:
        checker.close()


def _ticks(*values: float) -> Iterator[float]:
    yield from values
    while True:
        yield values[-1]


async def test_a_decoy_right_after_start_lasts_the_seeded_duration() -> None:
    ticks = _ticks(0.0, 2.0)  # the seed's check "took" 2 s: longer than a real one (~0.3 s)
    checker = SecretChecker(1, timer=lambda: next(ticks))
    try:
        # Not 0: the decoy waited for the seed. Event order on the loop's timers (a timer of
        # 2 s set first has fired), not elapsed time.
        seeded_duration = asyncio.Event()
        asyncio.get_running_loop().call_later(2.0, seeded_duration.set)
        await checker.decoy()
        assert seeded_duration.is_set()
    finally:
        checker.close()


async def test_checks_still_work_while_the_seed_runs() -> None:
    from argon2 import PasswordHasher

    stored = PasswordHasher().hash("s3cret")
    checker = SecretChecker(2)
    try:
        right, wrong = await asyncio.gather(
            checker.verify(stored, "s3cret"), checker.verify(stored, "nope")
        )
        assert (right, wrong) == (True, False)
    finally:
        checker.close()
