"""`sekisho serve --config FILE` (BENCH_SRV hook of bench/stack.py) whose overload screen refuses
every ExchangeToken call, for bench/refusal_floor.py: the standing-queue stage is told that every
call waited too long, so each call takes the real screened-refusal path (admission_gate.py:
screen, shed counter and log, rich status, abort) and nothing else changes.
"""

import sys

from sekisho import standing_queue
from sekisho.cli import main


def _always(self: object, waited: float, fresh: float, now: float) -> bool:
    return True


standing_queue.StandingQueue.refuse = _always  # type: ignore[method-assign]
sys.exit(main(["serve", "--config", sys.argv[1]]))
