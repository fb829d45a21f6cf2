"""`sekisho serve --config FILE` with the handler's own CPU measured (BENCH_SRV hook of
bench/stack.py): the interceptor's wrapped handler is timed with time.thread_time() (the loop
thread's CPU; the handler never suspends, bench/hotpath5_probe.py), per method, and the totals
are written to $HOTPATH_HANDLER_OUT as JSON at every SIGUSR1 and at exit.

    BENCH_SRV=bench/hotpath5_server.py HOTPATH_HANDLER_OUT=/tmp/h.json ... bench/hotpath5_threads.py
"""

import atexit
import json
import os
import signal
import sys
import time
from collections import defaultdict
from typing import Any

from sekisho.cli import main
from sekisho.rpc import interceptors

_totals: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
_original_wrap = interceptors.ErrorMappingInterceptor._wrap


def _timed_wrap(self: Any, behaviour: Any) -> Any:
    inner = _original_wrap(self, behaviour)
    name = getattr(behaviour, "__name__", "?")

    async def timed(request: Any, context: Any) -> Any:
        started = time.thread_time()
        try:
            return await inner(request, context)
        finally:
            entry = _totals[name]
            entry[0] += 1
            entry[1] += time.thread_time() - started

    return timed


def _dump(*_: Any) -> None:
    path = os.environ.get("HOTPATH_HANDLER_OUT")
    if path:
        with open(path, "w") as out:
            json.dump(dict(_totals), out)


interceptors.ErrorMappingInterceptor._wrap = _timed_wrap  # type: ignore[method-assign]
signal.signal(signal.SIGUSR1, _dump)
atexit.register(_dump)
sys.exit(main(["serve", "--config", sys.argv[1]]))
