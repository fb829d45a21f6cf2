"""`sekisho policy …`: the policy author's commands."""

import argparse
import json
from pathlib import Path

from sekisho.config import Settings
from sekisho.errors import ConfigError


def register(
    sub: "argparse._SubParsersAction[argparse.ArgumentParser]", common: argparse.ArgumentParser
) -> None:
    policy = sub.add_parser("policy", parents=[common], help="policy author tools")
    policy_sub = policy.add_subparsers(dest="policy_command", required=True)
    evaluate = policy_sub.add_parser(
        "eval", parents=[common], help="print the decision for an input"
    )
    evaluate.add_argument("--input", required=True, help="JSON input document")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from sekisho.policy.rego import RegoPolicyEngine

    if settings.policy.engine != "embedded":
        raise ConfigError(
            "config key 'policy.engine': only 'embedded' is available in this version"
        )
    engine = RegoPolicyEngine(settings.policy.path, settings.policy.query)
    engine.load()
    document = json.loads(Path(args.input).read_text(encoding="utf-8"))
    print(json.dumps(engine.evaluate_raw(document), indent=2, sort_keys=True))
    return 0
