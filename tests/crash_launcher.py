"""Runs the `sekisho` CLI and SIGKILLs it at its Nth durable-write step, for crash-consistency
tests: `python tests/crash_launcher.py N keys promote --config FILE …`.

Every `os.fsync` and `os.replace` is a step (the file keystore's temp-file + fsync + rename, the
folder fsync, the audit log's fsync). At step N the process kills itself with SIGKILL *before*
the step runs, exactly like a power cut or an OOM kill there: no exception handler, no `finally`,
no lock release other than the kernel's. N = 0 never kills, so a test can count the steps.
The number of steps taken is written to stderr as `crash_launcher: steps=K` on a normal exit.
"""

import os
import signal
import sys
from collections.abc import Callable
from typing import Any


def _counting(real: Callable[..., Any], kill_at: int, steps: list[int]) -> Callable[..., Any]:
    def step(*args: Any, **kwargs: Any) -> Any:
        steps[0] += 1
        if steps[0] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(*args, **kwargs)

    return step


def main() -> int:
    kill_at = int(sys.argv[1])
    steps = [0]
    os.fsync = _counting(os.fsync, kill_at, steps)
    os.replace = _counting(os.replace, kill_at, steps)
    from sekisho.cli import main as sekisho_main

    code = sekisho_main(sys.argv[2:])
    print(f"crash_launcher: steps={steps[0]}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
