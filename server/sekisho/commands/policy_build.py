"""`sekisho policy build`: an OPA Wasm bundle of the policy folder for [policy] bundle_file /
bundle_url, signed when asked, and checked as a replica would load it before it is written
(docs/policy-authors.md "How a merged change reaches production")."""

import argparse
import hashlib
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

from sekisho.commands import SubParsers
from sekisho.config import Settings
from sekisho.errors import PolicyLoadError
from sekisho.policy.toolchain import find_opa

if TYPE_CHECKING:
    from sekisho.policy.wasm.compiler import BundleSigning
    from sekisho.policy.wasm.signing import BundleVerifier


def register(policy_sub: SubParsers, common: argparse.ArgumentParser) -> None:
    build = policy_sub.add_parser(
        "build",
        parents=[common],
        help="write an OPA Wasm bundle of the folder for [policy] bundle_file / bundle_url",
    )
    build.add_argument("--output", required=True, help="the .tar.gz to write")
    build.add_argument("--revision", default="", help="the manifest revision (e.g. a git sha)")
    build.add_argument("--signing-key", default="", help="PEM private key (or HMAC secret file)")
    build.add_argument(
        "--signing-alg",
        # None: the key's type decides, as a replica without bundle_verification_alg does from
        # the public key, so a default build verifies by default.
        default=None,
        help="JWS algorithm of the signature (default: the key's: RS256 for RSA, ES256/384/512 "
        "for EC P-256/384/521, EdDSA for Ed25519; HS256/384/512 for an HMAC secret must be given)",
    )
    build.add_argument("--signing-scope", default="", help="the signature's scope claim")


def run(args: argparse.Namespace, settings: Settings) -> int:
    """opa build -b of the folder, then the bundle loaded and self-tested as a replica would."""
    from sekisho.policy.wasm.compiler import entrypoint_of

    output = Path(args.output)
    # Built beside --output and renamed over it only once checked: a bundle whose signature or
    # self-test fails must never sit where a deploy step would ship it, and an earlier good
    # bundle there stays as it was. Beside it: os.replace is atomic within one filesystem. Not
    # mkstemp: its 0600 file would become the bundle, unreadable to the server publishing it.
    staged = output.with_name(f".{output.name}.{secrets.token_hex(8)}.partial")
    try:
        algorithm, raw, revision = _build_checked(args, settings, staged)
        try:
            os.replace(staged, output)
        except OSError as exc:
            raise PolicyLoadError(f"cannot write the bundle to {output}: {exc}") from exc
    finally:
        staged.unlink(missing_ok=True)
    digest = hashlib.sha256(raw).hexdigest()
    signed = f"signed {algorithm}" if algorithm else "unsigned"
    print(f"wrote {output}: {len(raw)} bytes, sha256 {digest}, {signed}")
    print(f"revision {revision!r}, entrypoint {entrypoint_of(settings.policy.query)}")
    if algorithm:  # what it was checked with: the key's public half, or the same HMAC secret
        against = "the HMAC secret" if algorithm.startswith("HS") else "the key's public half"
        print(f"== signature verifies with {against}, as a replica checks it: ok")
    print("== bundle loads and passes the self-test: ok")
    return 0


def _build_checked(
    args: argparse.Namespace, settings: Settings, output: Path
) -> tuple[str | None, bytes, str]:
    """The bundle written to `output`, its signature verified and the bundle loaded and
    self-tested: (signature algorithm or None, its bytes, its revision).

    Raises: PolicyLoadError when it cannot be built or a replica would refuse it."""
    from sekisho.loops import LoopFailures, not_counted
    from sekisho.policy.wasm.bundles import BundlePolicyEngine
    from sekisho.policy.wasm.compiler import BundleSigning, build_bundle, entrypoint_of
    from sekisho.policy_components import bundle_polling, wasm_limits

    signing = None
    if args.signing_key:
        signing = BundleSigning(Path(args.signing_key), args.signing_alg, args.signing_scope)
    entrypoint = entrypoint_of(settings.policy.query)
    opa = find_opa(settings.policy.opa_binary, Path.cwd())
    algorithm = build_bundle(
        opa, settings.policy.path, entrypoint, output, revision=args.revision, signing=signing
    )
    raw = output.read_bytes()
    policy = BundlePolicyEngine(
        settings.policy.query,
        wasm_limits(settings.policy),
        failures=LoopFailures(not_counted),
        polling=bundle_polling(settings.policy),
        verifier=_verifier_of(signing, algorithm) if signing and algorithm else None,
    ).load(raw)
    return algorithm, raw, policy.revision


def _verifier_of(signing: "BundleSigning", algorithm: str) -> "BundleVerifier":
    """What a replica configured with the signing key's pair verifies with: the private key's
    public half (bundle_verification_key), or the same HMAC secret file for HS*. Loading the
    new bundle through it checks the signature opa wrote, not only that one was written.

    Raises: PolicyLoadError when the key file cannot be read again."""
    from cryptography.hazmat.primitives import serialization

    from sekisho.policy.wasm.signing import BundleVerifier

    if algorithm.startswith("HS"):
        return BundleVerifier.from_file(
            signing.key, algorithm, signing.scope, given_as="signing key"
        )
    try:
        private = serialization.load_pem_private_key(signing.key.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise PolicyLoadError(f"signing key {signing.key}: {exc}") from exc
    public = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return BundleVerifier(public.decode(), algorithm, signing.scope)
