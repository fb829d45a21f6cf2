"""`sekisho keys …`: the security team's signing-key commands."""

import argparse
import json
import time

from sekisho.config import Settings
from sekisho.errors import ConfigError


def register(
    sub: "argparse._SubParsersAction[argparse.ArgumentParser]", common: argparse.ArgumentParser
) -> None:
    keys = sub.add_parser("keys", parents=[common], help="manage signing keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    init = keys_sub.add_parser("init", parents=[common], help="create an active and a next key")
    init.add_argument("--if-missing", action="store_true", help="do nothing if keys exist")
    keys_sub.add_parser("list", parents=[common], help="show every key and its state")
    keys_sub.add_parser("jwks", parents=[common], help="print the published JWK Set")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from sekisho.signing.filestore import FileKeyStore
    from sekisho.signing.keyring import Keyring

    if settings.keys.backend != "file":
        raise ConfigError("config key 'keys.backend': only 'file' is available in this version")
    store = FileKeyStore(settings.keys.dir)
    if args.keys_command == "init":
        if args.if_missing and store.exists():
            print(f"keystore already initialised at {store.directory}")
            return 0
        for record in store.init(settings.keys.algorithm, int(time.time())):
            print(f"created {record.state.value:<8} {record.alg:<6} {record.kid}")
        return 0
    if args.keys_command == "list":
        print(f"{'KID':<44} {'ALG':<6} {'STATE':<9} {'CREATED':<20} {'ACTIVATED':<20} RETIRE-AFTER")
        for record in store.records():
            print(
                f"{record.kid:<44} {record.alg:<6} {record.state.value:<9} "
                f"{_time(record.created_at):<20} {_time(record.activated_at):<20} "
                f"{_time(record.retire_after)}"
            )
        return 0
    keyring = Keyring(store)
    keyring.load()
    print(json.dumps(json.loads(keyring.jwks_bytes), indent=2))
    return 0


def _time(epoch: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch)) if epoch else "-"
