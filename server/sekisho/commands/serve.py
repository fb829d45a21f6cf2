"""`sekisho serve`: run the gRPC and HTTP service until SIGTERM/SIGINT.

server.workers = 1 runs the service in this process; any other value runs a supervisor that
forks that many workers sharing the ports (workers.py).
"""

import argparse
import asyncio
import contextvars

from sekisho.config import Settings
from sekisho.eventloop import install as install_event_loop
from sekisho.logs import configure_logging
from sekisho.parentwatch import watch_parent


def register(
    sub: "argparse._SubParsersAction[argparse.ArgumentParser]", common: argparse.ArgumentParser
) -> None:
    serve = sub.add_parser("serve", parents=[common], help="run the gRPC and HTTP service")
    serve.add_argument(
        "--exit-with-parent",
        action="store_true",
        help="drain and exit when the process that started this one exits or is being stopped"
        " by a signal it does not pass on (`make run`: GNU make keeps SIGINT to itself)",
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.exit_with_parent:
        watch_parent()
    request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
    configure_logging(settings.logging.level, settings.logging.format, request_id)
    install_event_loop(settings.server.event_loop)
    if settings.server.workers != 1:
        from sekisho.workers import supervise

        return supervise(settings)
    from sekisho.service import run_until_signalled

    asyncio.run(run_until_signalled(settings, request_id))
    return 0
