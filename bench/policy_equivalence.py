"""Two revisions of the shipped policy modules decide identically: the modules of git revision
REV (policies/sekisho/) and the working tree's, each compiled by `opa build -t wasm` and loaded
by the working tree's embedded engine with the same data, evaluate the same inputs, and the
whole decision (every field, compared as canonical JSON, so `true` and `1` differ) must be equal.

    PATH=bin:$PATH .venv/bin/python bench/policy_equivalence.py [--baseline main] \\
        [--generated 20000] [--edge 20000]

Two worlds:

- `bench`: bench/policy_latency.py's 1,000-entry registry and its input generator (same seed);
- `edge`: the shipped registry plus downstreams that use every registry feature, well or badly
  formed (array and object resources, per-resource claims and consent, tenants with and without
  scope or resource limits, callers with and without client ids and limits, actors, undefined
  and malformed risk levels, grants outside the catalogue or not arrays), a populated deny-list,
  consents (valid, expired, malformed) and tenant issuers, asked by random users with missing
  claims, odd groups, unknown or unlisted audiences, resources and scopes, actors, callers and
  authentication times; once with decision_cache_seconds 60 and once with it malformed;
- `odd`: downstreams shaped at what the session 8 rewrite changed (tenant and caller entries
  that are false, null, true, a string or a number; `scopes` limits null, an object, a string,
  shared by tenant and caller; `tenants`, `callers`, `group_grants` and the catalogue as arrays
  or null; reserved claim names in any case, non-string names; equal caps as 60 and 60.0, a
  10^30 cap; downstreams that are not objects), asked by every combination of tenant, caller id
  and SPIFFE ID, duplicate groups and scopes, an empty scope and three actors (red team,
  session 9).

Prints the outcome mix and the number of differing decisions per world (exit 1 if any), and
the first differences in full.
"""

import argparse
import json
import random
import re
import subprocess
import sys
import tarfile
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import policy_latency
from sekisho.config import PolicyConfig
from sekisho.policy.wasm.engine import WasmPolicyEngine
from sekisho.policy_components import wasm_limits

REPO = Path(__file__).resolve().parent.parent
NOW = policy_latency.NOW
IDP = "https://idp.example.com"
OKTA = "https://initech.okta.example.com"
WORKLOADS = "https://workloads.example.com"
ODD = "https://odd-as.example.com"

ODD_DOWNSTREAMS: dict[str, Any] = {
    ODD: {
        "resources": {
            "https://odd.example.com/a": {
                "propagate_claims": ["name", "sub", "tenant", "email"],
                "max_ttl_seconds": 30,
                "consent": {"authorization_url": 7},
            },
            "https://odd.example.com/b": {"consent": True, "max_ttl_seconds": "60"},
            "https://odd.example.com/c": {"propagate_claims": []},
            "https://odd.example.com/d": {"consent": {"authorization_url": "https://c/d"}},
        },
        "scopes": {
            "odd.read": {},
            "odd.risky": {"risk": "undefined-level"},
            "odd.mid": {"risk": "elevated"},
            "odd.crit": {"risk": "critical"},
            "odd.malformed": {"risk": "malformed"},
            "odd.norank": {"risk": "norank"},
            "odd.strage": {"risk": "strage"},
            "odd.zero": {"risk": "zero"},
        },
        "group_grants": {
            "a": ["odd.read", "odd.risky", "odd.mid", "not.catalogued"],
            "b": ["odd.crit", "odd.malformed", "odd.norank"],
            "c": "odd.read",
            "d": {"x": "odd.read"},
            "e": ["odd.strage", "odd.zero", "odd.read"],
            "": ["odd.read"],
        },
        "default_scopes": ["odd.mid", "odd.nothing", "odd.zero"],
        "propagate_claims": ["email", "groups", "iss", "acr", "name", "tenant", "may_act", "x"],
        "callers": {
            "c1": {"client_id": 5, "scopes": []},
            "spiffe://x/c2": {"scopes": ["odd.read", "odd.mid", "odd.zero"]},
            "c3": {"client_id": "cid3"},
            "c4": {"scopes": False},
        },
        "actors": {"agent-1": {}, "agent-2": {"issuer": WORKLOADS}, "agent-3": "yes"},
        "tenants": {
            "acme": {
                "scopes": ["odd.read", "odd.zero"],
                "resources": ["https://odd.example.com/t"],
            },
            "globex": {"scopes": False},
            "initech": {},
            "umbrella": {"resources": {"https://odd.example.com/u": {"max_ttl_seconds": 10}}},
        },
        "max_ttl_seconds": 90,
        "tenant": "",
    },
    "https://odd2-as.example.com": {
        "resources": ["https://odd2.example.com/a", "https://odd2.example.com/b"],
        "scopes": {"odd2.read": {}, "odd2.high": {"risk": "high"}},
        "group_grants": {"a": ["odd2.read", "odd2.high"], "b": ["odd2.read"]},
        "callers": {"c1": {}, "c3": {"client_id": "x", "scopes": ["odd2.high"]}},
        "require_resource": True,
        "tenant": "globex",
        "propagate_claims": "email",
    },
    "https://odd3-as.example.com": {
        "scopes": {"odd3.read": {}},
        "group_grants": {"a": ["odd3.read"], "staff": ["odd3.read"]},
        "tenant": 5,
    },
    "https://odd5-as.example.com": {
        "resources": "https://odd5.example.com/mcp",
        "scopes": {"odd5.read": {}},
        "group_grants": {"a": ["odd5.read"], "b": ["odd5.read"]},
        "tenants": {"acme": {"resources": 5}, "globex": {"resources": []}},
        "default_scopes": "odd5.read",
    },
    "https://odd4-as.example.com": {
        "resources": {"https://odd4.example.com/a": {"propagate_claims": ["email"]}},
        "scopes": {"odd4.read": {}},
        "group_grants": {"a": ["odd4.read"]},
        "tenants": {},
        "callers": {},
        "max_ttl_seconds": 0,
    },
}

EXTRA_LEVELS = {
    "malformed": "not an object",
    "norank": {"acr_values": ["urn:example:acr:mfa"]},
    "strage": {"rank": 2, "max_age": "900"},
    "zero": {"rank": 0, "max_age": 0, "acr_values": []},
}


def edge_data(cache_seconds: Any) -> dict[str, Any]:
    shipped = json.loads((REPO / "policies" / "data" / "registry.json").read_text())
    registry = shipped["sekisho"]["registry"]
    registry["decision_cache_seconds"] = cache_seconds
    registry["risk_levels"].update(EXTRA_LEVELS)
    registry["downstreams"].update(ODD_DOWNSTREAMS)
    registry["tenants"]["globex"] = {"issuers": [IDP, "https://other.example.com"]}
    registry["tenants"]["umbrella"] = {"issuers": []}
    users = {
        "baduser": {},
        "issuser": {"issuer": IDP},
        "otherissuer": {"issuer": "https://other.example.com"},
        "malformed": {"issuer": 5},
        "emptyiss": {"issuer": ""},
    }
    consent_mail = "https://mail.example.com/mcp"
    consents = {
        IDP: {
            "alice": {consent_mail: {}, "https://odd.example.com/a": {"expires_at": NOW + 100}},
            "bob": {consent_mail: {"expires_at": NOW - 1}, "https://odd.example.com/b": {}},
            "carol": {consent_mail: {"expires_at": "soon"}, "https://odd.example.com/d": {}},
        },
        OKTA: {"alice": {consent_mail: {"expires_at": 0}}},
    }
    return {
        "sekisho": {
            "registry": registry,
            "denylist": {"users": users, "callers": {"badcaller": True, "spiffe://bad": {}}},
            "consents": consents,
        }
    }


def _odd_downstream(**changes: Any) -> Any:
    entry: dict[str, Any] = {
        "scopes": {
            "a": {},
            "b": {"risk": "elevated"},
            "c": {"risk": None},
            "d": {"risk": False},
            "e": {"risk": 0},
        },
        "group_grants": {"g": ["a", "b", "c", "d", "e", "a"], "dup": ["a", "a"]},
        "resources": {
            "https://r1": {"max_ttl_seconds": 60},
            "https://r2": {"max_ttl_seconds": 60.0},
        },
        "max_ttl_seconds": 60.0,
    }
    entry.update(changes)
    return entry


ODD_SHAPES: dict[str, Any] = {
    "plain": _odd_downstream(),
    "tenant-false": _odd_downstream(tenants={"acme": False}),
    "tenant-null": _odd_downstream(tenants={"acme": None}),
    "tenant-true": _odd_downstream(tenants={"acme": True}),
    "tenant-string": _odd_downstream(tenants={"acme": "x"}),
    "tenant-scopes-null": _odd_downstream(tenants={"acme": {"scopes": None}}),
    "tenant-scopes-object": _odd_downstream(tenants={"acme": {"scopes": {"x": "a"}}}),
    "tenant-scopes-string": _odd_downstream(tenants={"acme": {"scopes": "a"}}),
    "tenant-resources-false": _odd_downstream(tenants={"acme": {"resources": False}}),
    "tenants-array": _odd_downstream(tenants=[{"scopes": ["a"]}]),
    "tenants-null": _odd_downstream(tenants=None),
    "tenants-empty-name": _odd_downstream(tenants={"": {"scopes": ["a"]}}),
    "caller-false": _odd_downstream(callers={"c1": False}),
    "caller-null": _odd_downstream(callers={"c1": None}),
    "caller-number": _odd_downstream(callers={"c1": 0}),
    "caller-spiffe-only": _odd_downstream(callers={"spiffe://c": {"scopes": ["a"]}}),
    "caller-both": _odd_downstream(
        callers={"c1": {"scopes": ["b"], "client_id": 7}, "spiffe://c": {"scopes": ["a"]}}
    ),
    "same-limits": _odd_downstream(
        tenants={"acme": {"scopes": ["a", "b"]}}, callers={"c1": {"scopes": ["a", "b"]}}
    ),
    "callers-array": _odd_downstream(callers=["c1"]),
    "callers-null": _odd_downstream(callers=None),
    "claims-reserved": _odd_downstream(
        propagate_claims=["ISS", "iss", "email", False, None, 5, ["iss"], "", "groups", "act"]
    ),
    "grants-array": _odd_downstream(group_grants=[["a"]]),
    "catalogue-array": _odd_downstream(scopes=["a"]),
    "actors-odd": _odd_downstream(actors={"": {}, "agent": {"issuer": None}}),
    "ttl-huge": _odd_downstream(max_ttl_seconds=10**30),
    "ttl-string": _odd_downstream(max_ttl_seconds="60"),
    "not-an-object": True,
    "an-array": [1],
    "empty": {},
}


def odd_data() -> dict[str, Any]:
    shipped = json.loads((REPO / "policies" / "data" / "registry.json").read_text())
    registry = shipped["sekisho"]["registry"]
    registry["decision_cache_seconds"] = 10**20
    registry["downstreams"] = {f"https://odd.example/{k}": v for k, v in ODD_SHAPES.items()}
    return {
        "sekisho": {"registry": registry, "denylist": {"users": {}, "callers": {}}, "consents": {}}
    }


def odd_documents() -> list[dict[str, Any]]:
    """Every combination below for every ODD_SHAPES audience (900 each, 26,100 inputs)."""
    claims = {"iss": IDP, "ISS": "x", "email": "alice@example.com", "act": {"sub": "x"}}
    claims["may_act"] = {"sub": "agent"}
    actors = [
        None,
        {"sub": "agent", "iss": "x", "claims": {}},
        {"sub": "", "iss": "", "claims": {}},
    ]
    callers = [("", ""), ("c1", ""), ("c1", "spiffe://c"), ("", "spiffe://c"), ("zz", "spiffe://c")]
    docs = []
    for audience in (f"https://odd.example/{k}" for k in ODD_SHAPES):
        for tenant in ["", "acme", "Acme"]:
            for caller_id, spiffe in callers:
                for groups in [["g"], ["dup", "dup"], [], ["g", "g"]]:
                    for scopes in [[], ["a"], ["a", "a"], ["b", "c", "d", "e"], [""]]:
                        for actor in actors:
                            subject = {
                                "iss": IDP,
                                "sub": "alice",
                                "client_id": "",
                                "tenant": tenant,
                            }
                            subject |= {"email": "", "groups": groups, "acr": "", "amr": []}
                            subject |= {"auth_time": 0, "claims": claims}
                            request = {"audience": audience, "resources": [], "scopes": scopes}
                            request |= {"requested_token_type": "", "subject_token_type": ""}
                            request |= {"lifetime_seconds": 0, "context": {}}
                            caller = {"id": caller_id, "spiffe_id": spiffe}
                            caller["authenticated_by"] = "mtls"
                            docs.append(
                                {
                                    "subject": subject,
                                    "actor": actor,
                                    "caller": caller,
                                    "request": request,
                                    "now": NOW,
                                }
                            )
    return docs


def _pick(rng: random.Random, values: list[Any], most: int) -> list[Any]:
    return [rng.choice(values) for _ in range(rng.randint(0, most))]


# Weighted choices (repeats are weights): mostly well-behaved users, some on the deny-list.
SUBJECTS = ["alice", "bob", "carol", "u1"] * 8 + ["baduser", "issuser", "otherissuer"]
SUBJECTS += ["malformed", "emptyiss"]
ISSUERS = [IDP, IDP, IDP, OKTA, "https://other.example.com"]
TENANTS = ["", "acme", "acme", "acme", "Acme", "globex", "initech", "umbrella", "zzz"]
CALLER_IDS = ["", "", "c1", "c3", "c4", "hr-batch", "x"] * 3 + ["badcaller"]
SPIFFE_IDS = ["", "", "", "", "spiffe://x/c2", "spiffe://example.org/agents/hr-assistant"] * 3
SPIFFE_IDS += ["spiffe://bad"]
UNLISTED_RESOURCES = {
    "https://odd.example.com/t",
    "https://odd.example.com/u",
    "https://wiki.example.com/acme/mcp",
    "https://wiki.example.com/globex/mcp",
    "https://unknown.example.com/x",
}


def _claims(rng: random.Random, sub: str, iss: str, tenant: str, groups: list[str]) -> Any:
    """Each claim present or missing, at random; may_act with or without `iss`."""
    may_act: dict[str, Any] = {"sub": rng.choice(["agent-1", "agent-9"])}
    if rng.random() < 0.5:
        may_act["iss"] = WORKLOADS
    candidates = {
        "email": f"{sub}@example.com",
        "name": sub.title(),
        "groups": groups,
        "tenant": tenant,
        "iss": iss,
        "sub": sub,
        "x": [1, {"y": None}],
        "may_act": may_act,
    }
    return {name: value for name, value in candidates.items() if rng.random() < 0.5}


def edge_document(rng: random.Random, data: dict[str, Any]) -> dict[str, Any]:
    """A random, schema-valid input over the edge world's names (and some unknown ones)."""
    downstreams = data["sekisho"]["registry"]["downstreams"]
    groups_seen = sorted({g for d in downstreams.values() for g in d.get("group_grants", {})})
    scopes_seen = sorted({s for d in downstreams.values() for s in d.get("scopes", {})})
    listed = {r for d in downstreams.values() for r in d.get("resources", [])}
    resources_seen = sorted(listed | UNLISTED_RESOURCES)
    audience = rng.choice([*sorted(downstreams), *[ODD] * 6, "https://unknown-as.example.com", ""])
    own = downstreams.get(audience, {})
    own_groups = sorted(own.get("group_grants", {})) or groups_seen
    sub, iss, tenant = rng.choice(SUBJECTS), rng.choice(ISSUERS), rng.choice(TENANTS)
    groups = _pick(rng, own_groups, 3) + _pick(rng, [*groups_seen, "", "A", "team x"], 2)
    own_scopes = sorted(own.get("scopes", {})) or scopes_seen
    own_resources = own.get("resources", [])
    own_resources = sorted(own_resources) if isinstance(own_resources, (dict, list)) else []
    claims = _claims(rng, sub, iss, tenant, _pick(rng, groups_seen, 2))
    actor = None
    if rng.random() < 0.2:
        actor = {
            "sub": rng.choice(["agent-1", "agent-2", "agent-3", "agent-9"]),
            "iss": rng.choice([WORKLOADS, IDP]),
            "claims": {},
        }
    caller_id, spiffe = rng.choice(CALLER_IDS), rng.choice(SPIFFE_IDS)
    return {
        "subject": {
            "iss": iss,
            "sub": sub,
            "client_id": "agent-app",
            "tenant": tenant,
            "email": claims.get("email", ""),
            "groups": groups,
            "acr": rng.choice(["", "urn:example:acr:mfa", "urn:example:acr:phishing-resistant"]),
            "amr": _pick(rng, ["pwd", "otp", "hwk"], 2),
            "auth_time": rng.choice([0, NOW - 100, NOW - 1000, NOW - 4000, NOW + 10]),
            "claims": claims,
        },
        "actor": actor,
        "caller": {
            "id": caller_id,
            "spiffe_id": spiffe,
            "authenticated_by": rng.choice(["mtls", "client_secret", "none"]),
        },
        "request": {
            "audience": audience,
            "resources": _pick(rng, own_resources or resources_seen, 2)
            + _pick(rng, resources_seen, rng.choice([0, 0, 0, 1])),
            "scopes": _pick(rng, own_scopes, 3) + _pick(rng, [*scopes_seen, "unknown.scope"], 1),
            "requested_token_type": "urn:ietf:params:oauth:token-type:id-jag",
            "subject_token_type": "urn:ietf:params:oauth:token-type:id_token",
            "lifetime_seconds": rng.choice([0, 60]),
            "context": {},
        },
        "now": NOW,
    }


def modules_of(revision: str, target: Path) -> Path:
    """REV's policies/sekisho/ under target/policies."""
    archive = target / "policies.tar"
    with archive.open("wb") as out:
        command = ["git", "-C", str(REPO), "archive", revision, "policies/sekisho"]
        subprocess.run(command, stdout=out, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(target, filter="data")
    return target / "policies" / "sekisho"


def engine(modules: Path, data: dict[str, Any], folder: Path) -> WasmPolicyEngine:
    """The embedded engine on `modules` with `data` as the folder's only data file."""
    (folder / "data").mkdir(parents=True)
    (folder / "data" / "data.json").write_text(json.dumps(data))
    subprocess.run(["cp", "-r", str(modules), str(folder / "sekisho")], check=True)
    config = PolicyConfig()
    loaded = WasmPolicyEngine(
        folder, policy_latency.QUERY, Path(policy_latency.opa_binary()), wasm_limits(config),
        compile_timeout=config.compile_timeout_seconds,
    )  # fmt: skip
    loaded.load()
    return loaded


def compare(name: str, base: Path, data: dict[str, Any], docs: list[Any], tmp: Path) -> int:
    """Differing decisions of the two module sets on `docs` (printed with the outcome mix)."""
    before = engine(base, data, tmp / name / "before")
    after = engine(REPO / "policies" / "sekisho", data, tmp / name / "after")
    differ, kinds = 0, Counter()
    for doc in docs:
        old, new = before.evaluate_raw(doc), after.evaluate_raw(doc)
        kinds[
            "allow" if old.get("allow") else re.sub(r" for \S+://\S+$", "", str(old.get("reason")))
        ] += 1
        if json.dumps(old, sort_keys=True) != json.dumps(new, sort_keys=True):
            differ += 1
            if differ <= 3:
                print(f"  differs: {json.dumps(doc)}\n    before {old}\n    after  {new}")
    print(f"{name}: {len(docs)} inputs, outcomes {dict(sorted(kinds.items()))}; differ: {differ}")
    return differ


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="main")
    parser.add_argument("--generated", type=int, default=20_000)
    parser.add_argument("--downstreams", type=int, default=1_000)
    parser.add_argument("--edge", type=int, default=20_000)
    args = parser.parse_args()
    rng = random.Random(20261123)  # noqa: S311 - the bench's inputs
    bench = policy_latency.registry(args.downstreams, rng)
    bench_docs = [policy_latency.document(rng, bench) for _ in range(args.generated)]
    edge_rng = random.Random(20261202)  # noqa: S311 - reproducible test data
    edge = edge_data(60)
    edge_docs = [edge_document(edge_rng, edge) for _ in range(args.edge)]
    differ = 0
    with tempfile.TemporaryDirectory() as tmp:
        base = modules_of(args.baseline, Path(tmp))
        differ += compare("bench", base, bench, bench_docs, Path(tmp))
        differ += compare("edge", base, edge, edge_docs, Path(tmp))
        malformed = edge_data("60")
        differ += compare("edge-cache-malformed", base, malformed, edge_docs[:5000], Path(tmp))
        differ += compare("odd", base, odd_data(), odd_documents(), Path(tmp))
    print(f"baseline {args.baseline}: decisions that differ in any field: {differ}")
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
