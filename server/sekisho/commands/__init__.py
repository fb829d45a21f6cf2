"""One module per `sekisho` subcommand: each defines `register(subparsers, common)` and `run`."""

import argparse
from typing import TypeAlias

SubParsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
