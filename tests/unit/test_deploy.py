"""deploy/: the Kubernetes manifests agree with Sekisho itself. The TOML in each ConfigMap loads
through Sekisho's own config loader (so it cannot drift from the schema), and the Deployment's
ports, probes, grace period, mounts and security settings match that config. The default base
runs the embedded engine from a signed bundle with no OPA anywhere in the pod; the opa-server
overlay differs from it only in how policy is evaluated. Schema validity of the base, every
overlay and every example is `make deploy-check` (kustomize build, then kubeconform, strict);
tests/integration/test_deploy_bundle_flow.py runs the base's [policy] table against a real
bundle server on loopback."""

import json
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric import ec
from sekisho.config import Settings, load_settings
from sekisho.errors import ConfigError
from sekisho.exposure import check_exposure, loopback_dependencies
from sekisho.signing.material import public_jwk
from sekisho.workers import STOP_MARGIN_SECONDS

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
BASE = DEPLOY / "base"
OPA_SERVER = DEPLOY / "overlays" / "opa-server"
BUNDLE_SERVER = DEPLOY / "examples" / "bundle-server"
Manifests = dict[str, dict[str, Any]]


def documents(folder: Path) -> Manifests:
    """Each kind in the folder's manifests (one object per kind), Kustomizations left out."""
    found = {}
    for path in sorted(folder.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if document["kind"] != "Kustomization":
                found[document["kind"]] = document
    return found


def load_toml(text: str, folder: Path) -> Settings:
    path = folder / "sekisho.toml"
    path.write_text(text, encoding="utf-8")
    return load_settings(path)


@pytest.fixture(scope="module")
def manifests() -> Manifests:
    return documents(BASE)


@pytest.fixture(scope="module")
def settings(manifests: Manifests, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    toml = manifests["ConfigMap"]["data"]["sekisho.toml"]
    return load_toml(toml, tmp_path_factory.mktemp("base"))


@pytest.fixture(scope="module")
def opa_patches() -> Manifests:
    return documents(OPA_SERVER)


@pytest.fixture(scope="module")
def opa_settings(opa_patches: Manifests, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    toml = opa_patches["ConfigMap"]["data"]["sekisho.toml"]
    return load_toml(toml, tmp_path_factory.mktemp("opa-server"))


def pod_of(manifests: Manifests) -> dict[str, Any]:
    spec: dict[str, Any] = manifests["Deployment"]["spec"]["template"]["spec"]
    return spec


def container(manifests: Manifests, name: str) -> dict[str, Any]:
    return next(c for c in pod_of(manifests)["containers"] if c["name"] == name)


def test_configmap_toml_is_a_valid_scale_out_config(settings: Settings) -> None:
    assert settings.server.workers > 1
    assert settings.keys.backend == "kms"
    assert settings.server.tls_enabled
    assert settings.metrics.enabled


def test_the_base_serves_a_signed_bundle_from_a_bundle_server(settings: Settings) -> None:
    policy = settings.policy
    assert policy.engine == "embedded"
    assert policy.bundle_url.startswith("https://")
    assert policy.bundle_file is None
    assert not policy.reads_folder  # no policy folder and no opa binary in the container
    # Signed bundles only: without a key any bundle the server hands out would be served.
    assert policy.bundle_verification_key is not None
    assert policy.bundle_verification_alg == "ES256"


def test_the_base_pod_runs_no_opa(manifests: Manifests) -> None:
    containers = pod_of(manifests)["containers"]
    assert [c["name"] for c in containers] == ["sekisho"]
    assert not any("opa" in c["image"] for c in containers)
    assert "opa.yaml" not in manifests["ConfigMap"]["data"]
    env = {e["name"] for e in container(manifests, "sekisho").get("env", [])}
    assert not any("OPA" in name for name in env)


def test_the_verification_key_is_mounted_where_the_config_names_it(
    manifests: Manifests,
) -> None:
    # A key path the pod does not have would leave every replica unable to start.
    sekisho = container(manifests, "sekisho")
    config_file = PurePosixPath(sekisho["args"][sekisho["args"].index("--config") + 1])
    toml = tomllib.loads(manifests["ConfigMap"]["data"]["sekisho.toml"])
    key_file = config_file.parent / toml["policy"]["bundle_verification_key"]
    mount = next(
        m for m in sekisho["volumeMounts"] if PurePosixPath(m["mountPath"]) == key_file.parent
    )
    volume = next(v for v in pod_of(manifests)["volumes"] if v["name"] == mount["name"])
    items = {item["path"]: item["key"] for item in volume["configMap"]["items"]}
    assert volume["configMap"]["name"] == manifests["ConfigMap"]["metadata"]["name"]
    assert "PUBLIC KEY" in manifests["ConfigMap"]["data"][items[key_file.name]]


def test_container_ports_are_the_configured_listeners(
    manifests: Manifests, settings: Settings
) -> None:
    ports = {p["name"]: p["containerPort"] for p in container(manifests, "sekisho")["ports"]}
    assert str(ports["grpc"]) == settings.server.grpc_listen.rpartition(":")[2]
    assert str(ports["https"]) == settings.server.http_listen.rpartition(":")[2]
    service_ports = {p["targetPort"] for p in manifests["Service"]["spec"]["ports"]}
    assert service_ports == {"grpc", "https"}


def test_probes_use_healthz_and_readyz(manifests: Manifests) -> None:
    sekisho = container(manifests, "sekisho")
    assert sekisho["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert sekisho["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert sekisho["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"


def test_grace_period_covers_the_drain(manifests: Manifests, settings: Settings) -> None:
    pause = container(manifests, "sekisho")["lifecycle"]["preStop"]["sleep"]["seconds"]
    drain = pause + settings.server.shutdown_grace_seconds + STOP_MARGIN_SECONDS
    assert pod_of(manifests)["terminationGracePeriodSeconds"] >= drain


def test_workers_match_the_cpu_request(manifests: Manifests, settings: Settings) -> None:
    cpu = container(manifests, "sekisho")["resources"]["requests"]["cpu"]
    assert int(cpu) == settings.server.workers


@pytest.mark.parametrize(
    ("folder", "name"),
    [
        pytest.param(BASE, "sekisho", id="base-sekisho"),
        pytest.param(OPA_SERVER, "opa", id="opa-server-opa"),
        pytest.param(BUNDLE_SERVER, "nginx", id="bundle-server-nginx"),
    ],
)
def test_containers_are_locked_down(folder: Path, name: str) -> None:
    manifests = documents(folder)
    found = container(manifests, name)
    context = found["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"]
    assert {"cpu", "memory"} <= found["resources"]["limits"].keys()
    assert "readinessProbe" in found and "livenessProbe" in found
    if folder != OPA_SERVER:  # a patch: the pod's context is the base's
        assert pod_of(manifests)["securityContext"]["runAsNonRoot"]


def test_kms_credentials_come_from_the_service_account(manifests: Manifests) -> None:
    account = manifests["ServiceAccount"]
    assert "eks.amazonaws.com/role-arn" in account["metadata"]["annotations"]
    assert pod_of(manifests)["serviceAccountName"] == account["metadata"]["name"]


def test_autoscaling_and_disruption_budget_target_the_deployment(manifests: Manifests) -> None:
    name = manifests["Deployment"]["metadata"]["name"]
    assert manifests["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]["name"] == name
    assert manifests["HorizontalPodAutoscaler"]["spec"]["minReplicas"] >= 2
    labels = manifests["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert (
        manifests["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items()
        <= labels.items()
    )


def ingress_sources(policy: dict[str, Any], port: dict[str, Any]) -> list[list[Any]]:
    """The `from` lists of the ingress rules that admit this container port ([] = any source)."""
    admitting = []
    for rule in policy["spec"].get("ingress", []):
        named = {p["port"] for p in rule.get("ports", [])}
        if not rule.get("ports") or port["name"] in named or port["containerPort"] in named:
            admitting.append(rule.get("from", []))
    return admitting


def pod_ports(*folders: Manifests) -> list[dict[str, Any]]:
    return [p for found in folders for c in pod_of(found)["containers"] for p in c.get("ports", [])]


def test_the_network_policy_selects_the_sekisho_pods(manifests: Manifests) -> None:
    policy = manifests["NetworkPolicy"]
    labels = manifests["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    assert "Ingress" in policy["spec"]["policyTypes"]


def test_only_the_public_ports_are_open_to_any_source(
    manifests: Manifests, opa_patches: Manifests
) -> None:
    # Without the policy anything that reaches the pod IP reads /metrics (plain HTTP, no
    # authentication) and, in the opa-server overlay, OPA's diagnostic port.
    policy = manifests["NetworkPolicy"]
    public = {p["targetPort"] for p in manifests["Service"]["spec"]["ports"]}
    for port in pod_ports(manifests, opa_patches):
        sources = ingress_sources(policy, port)
        if port["name"] in public:
            assert [] in sources, port  # callers and JWKS readers
        else:
            assert [] not in sources, port


def test_metrics_are_reachable_only_from_the_labelled_scraper(manifests: Manifests) -> None:
    metrics = next(p for p in pod_ports(manifests) if p["name"] == "metrics")
    [sources] = ingress_sources(manifests["NetworkPolicy"], metrics)
    # One entry holding both selectors: a monitoring-namespace pod with the scraper's label
    # (two entries would admit every pod of that namespace, or that label in any namespace).
    [peer] = sources
    assert peer["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "monitoring"}
    assert peer["podSelector"]["matchLabels"]


@pytest.mark.parametrize(
    "folder",
    [
        pytest.param(BASE, id="base"),
        pytest.param(OPA_SERVER, id="opa-server"),
        pytest.param(BUNDLE_SERVER, id="bundle-server"),
    ],
)
def test_every_manifest_is_in_its_kustomization(folder: Path) -> None:
    # `make deploy-check` validates what kustomize builds: a file the kustomization does not
    # list is neither applied nor checked.
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text(encoding="utf-8"))
    listed = set(kustomization.get("resources", []))
    listed |= {patch["path"] for patch in kustomization.get("patches", [])}
    files = {path.name for path in folder.glob("*.yaml")} - {"kustomization.yaml"}
    assert files <= listed


def test_the_deployed_config_passes_the_exposure_check(settings: Settings) -> None:
    # Listeners on 0.0.0.0 and nothing on loopback: no exemption needed, none granted.
    assert loopback_dependencies(settings) == []
    assert not settings.server.allow_loopback_dependencies
    check_exposure(settings)


def test_registering_clients_in_the_deployed_config_needs_the_shared_replay_cache(
    manifests: Manifests, tmp_path: Path
) -> None:
    # Carried-over finding: with replicas > 1 an in-process client-assertion replay cache lets
    # an assertion replayed to another replica through. The deployed config (workers = 2) is
    # refused with private_key_jwt clients and no replay_cache_url, and loads once the lines it carries
    # commented are uncommented: the default deployment cannot run with the hole.
    toml = manifests["ConfigMap"]["data"]["sekisho.toml"]
    jwk = public_jwk(ec.generate_private_key(ec.SECP256R1()).public_key()) | {"kid": "k1"}
    jwks = json.dumps(json.dumps({"keys": [jwk]}))  # a TOML string holding the JWK Set
    client = f'\n[[token_endpoint.clients]]\nid = "agent"\njwks = {jwks}\n'  # private_key_jwt
    with pytest.raises(ConfigError, match="every worker and replica"):
        load_toml(toml.replace("clients = []\n", "") + client, tmp_path)
    shared = toml.replace("# replay_cache_url", "replay_cache_url").replace(
        "# replay_cache_password_env", "replay_cache_password_env"
    )
    settings = load_toml(shared.replace("clients = []\n", "") + client, tmp_path)
    assert settings.token_endpoint.replay_cache_url.startswith("rediss://")


# --- overlays/opa-server ------------------------------------------------------------------------


def test_the_opa_server_overlay_queries_the_sidecar(opa_settings: Settings) -> None:
    assert (opa_settings.policy.engine, opa_settings.policy.manage) == ("opa", False)
    assert opa_settings.policy.opa_url == "http://127.0.0.1:8181"  # the sidecar, over loopback
    assert not opa_settings.policy.uses_bundle


def test_the_opa_server_overlay_changes_only_how_policy_is_evaluated(
    manifests: Manifests, opa_patches: Manifests
) -> None:
    # Kustomize cannot patch inside the TOML, so the overlay carries a whole copy: it must not
    # drift from the base in anything but [policy] and the sidecar's loopback exemption.
    def rest(configmap: dict[str, Any]) -> dict[str, Any]:
        tables = tomllib.loads(configmap["data"]["sekisho.toml"])
        tables.pop("policy")
        tables["server"].pop("allow_loopback_dependencies", None)
        return tables

    assert rest(opa_patches["ConfigMap"]) == rest(manifests["ConfigMap"])


def test_opa_api_takes_only_sekishos_token(opa_patches: Manifests, opa_settings: Settings) -> None:
    # Issue 19: an unauthenticated OPA API lets any process in the pod push a granting module.
    opa = container(opa_patches, "opa")
    assert {"--authentication=token", "--authorization=basic", "/etc/opa/authz.rego"} <= set(
        opa["args"]
    )
    assert "package system.authz" in opa_patches["ConfigMap"]["data"]["authz.rego"]
    env = opa_settings.policy.opa_token_env
    assert env
    for name in ("sekisho", "opa"):
        names = {e["name"]: e for e in container(opa_patches, name).get("env", [])}
        assert names[env]["valueFrom"]["secretKeyRef"]["name"] == "sekisho-opa-api-token"


def test_the_opa_server_overlay_passes_the_exposure_check(opa_settings: Settings) -> None:
    # Listeners on 0.0.0.0 with an OPA sidecar on loopback: allowed only because it says so.
    assert loopback_dependencies(opa_settings) == ["policy.opa_url: http://127.0.0.1:8181"]
    assert opa_settings.server.allow_loopback_dependencies
    check_exposure(opa_settings)


# --- examples/bundle-server ---------------------------------------------------------------------


def test_the_example_bundle_server_serves_the_ci_configmap_over_https() -> None:
    manifests = documents(BUNDLE_SERVER)
    nginx = container(manifests, "nginx")
    conf = manifests["ConfigMap"]["data"]["default.conf"]
    assert "listen 8443 ssl;" in conf and "etag on;" in conf
    volumes = {v["name"]: v for v in pod_of(manifests)["volumes"]}
    assert volumes["bundle"]["configMap"]["name"] == "sekisho-bundle"  # written by CI
    mounts = {m["name"]: m for m in nginx["volumeMounts"]}
    assert "alias /srv/bundles/sekisho.tar.gz;" in conf
    assert mounts["bundle"]["mountPath"] == "/srv/bundles"
    policy = manifests["NetworkPolicy"]["spec"]["ingress"][0]["from"][0]["podSelector"]
    base_labels = documents(BASE)["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert policy["matchLabels"].items() <= base_labels.items()  # only Sekisho pods may read it
