"""`sekisho serve`: run the gRPC and HTTP service until SIGTERM/SIGINT."""

import argparse
import asyncio
import contextvars

from sekisho.config import Settings
from sekisho.logs import configure_logging


def register(
    sub: "argparse._SubParsersAction[argparse.ArgumentParser]", common: argparse.ArgumentParser
) -> None:
    sub.add_parser("serve", parents=[common], help="run the gRPC and HTTP service")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from sekisho.service import run_until_signalled

    request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
    configure_logging(settings.logging.level, settings.logging.format, request_id)
    asyncio.run(run_until_signalled(settings, request_id))
    return 0
