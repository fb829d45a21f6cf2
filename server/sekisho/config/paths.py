"""Path resolution: the config's relative paths, resolved once after validation."""

import os
from pathlib import Path
from typing import Any

from sekisho.config.policy import PolicyConfig
from sekisho.config.settings import Settings
from sekisho.policy.options import DecisionLogConfig


def _followed(base: Path, value: Path | str) -> Path:
    """A path the service reads again after start (a watched folder, a bundle file), relative
    to the config's folder with its symlinks kept: the watch follows a symlink repointed at a new
    release (reload.watch_directory), but only if the path still names the link. Resolved here,
    `current -> releases/v1` became releases/v1 for good, and a repoint (git-sync, `ln -sfn`) was
    never reloaded (red team session 18)."""
    return Path(os.path.normpath(base / value))


def resolve_paths(settings: Settings, base: Path) -> Settings:
    """Make relative paths relative to the config file's folder (docs/architecture.md §6)."""
    opa_binary = settings.policy.opa_binary
    if "/" in opa_binary:  # a path, not a name looked up on PATH
        opa_binary = os.path.normpath(base / opa_binary)  # keep symlinks: bin/opa may be one
    policy_update: dict[str, Any] = {
        "path": _followed(base, settings.policy.path),
        "opa_binary": opa_binary,
    }
    if settings.policy.bundle_file is not None:
        policy_update["bundle_file"] = _followed(base, settings.policy.bundle_file)
    for name in (
        "opa_ca_file",
        "bundle_ca_file",
        "bundle_verification_key",
        "compile_cache_dir",
    ):
        if (value := getattr(settings.policy, name)) is not None:
            policy_update[name] = (base / value).resolve()
    policy = settings.policy.model_copy(update=policy_update)
    keys_update: dict[str, Any] = {"dir": _followed(base, settings.keys.dir)}
    if settings.keys.audit_log:
        keys_update["audit_log"] = str((base / settings.keys.audit_log).resolve())
    keys = settings.keys.model_copy(update=keys_update)
    tls_update = {
        name: (base / path).resolve()
        for name in ("tls_cert_file", "tls_key_file", "client_ca_file")
        if (path := getattr(settings.server, name)) is not None
    }
    server = settings.server.model_copy(update=tls_update)
    status_update: dict[str, Any] = {"path": (base / settings.status_list.path).resolve()}
    if settings.status_list.audit_log:
        status_update["audit_log"] = str((base / settings.status_list.audit_log).resolve())
    if settings.status_list.redis_ca_file is not None:
        status_update["redis_ca_file"] = (base / settings.status_list.redis_ca_file).resolve()
    status_list = settings.status_list.model_copy(update=status_update)
    policy, decision_log = _resolve_decision_paths(policy, settings.decision_log, base)
    endpoint = settings.token_endpoint
    if endpoint.replay_cache_ca_file is not None:
        ca_file = (base / endpoint.replay_cache_ca_file).resolve()
        endpoint = endpoint.model_copy(update={"replay_cache_ca_file": ca_file})
    return settings.model_copy(
        update={
            "token_endpoint": endpoint,
            "policy": policy,
            "keys": keys,
            "server": server,
            "status_list": status_list,
            "decision_log": decision_log,
        }
    )


def _resolve_decision_paths(
    policy: PolicyConfig, decision_log: DecisionLogConfig, base: Path
) -> tuple[PolicyConfig, DecisionLogConfig]:
    """[policy.shadow] path and the [decision_log] files, relative to the config's folder."""
    shadow = policy.shadow
    shadow = shadow.model_copy(
        update={
            name: str(_followed(base, value))
            for name in ("path", "bundle_file")
            if (value := getattr(shadow, name))
        }
    )
    update: dict[str, Any] = {"path": (base / decision_log.path).resolve()}
    if decision_log.hash_key_file:
        update["hash_key_file"] = str((base / decision_log.hash_key_file).resolve())
    return policy.model_copy(update={"shadow": shadow}), decision_log.model_copy(update=update)
