"""deploy/: the Kubernetes manifests agree with Sekisho itself. The TOML in the ConfigMap loads
through Sekisho's own config loader (so it cannot drift from the schema), and the Deployment's
ports, probes, grace period and security settings match that config. Schema validity is
`make deploy-check` (kubeconform, strict)."""

from pathlib import Path
from typing import Any

import pytest
import yaml
from sekisho.config import Settings, load_settings
from sekisho.workers import STOP_MARGIN_SECONDS

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def _documents() -> dict[str, dict[str, Any]]:
    found = {}
    for path in sorted(DEPLOY.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            found[document["kind"]] = document
    return found


@pytest.fixture(scope="module")
def manifests() -> dict[str, dict[str, Any]]:
    return _documents()


@pytest.fixture(scope="module")
def settings(
    manifests: dict[str, dict[str, Any]], tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    path = tmp_path_factory.mktemp("deploy") / "sekisho.toml"
    path.write_text(manifests["ConfigMap"]["data"]["sekisho.toml"], encoding="utf-8")
    return load_settings(path)


def _container(manifests: dict[str, dict[str, Any]], name: str) -> dict[str, Any]:
    pod = manifests["Deployment"]["spec"]["template"]["spec"]
    return next(c for c in pod["containers"] if c["name"] == name)


def test_configmap_toml_is_a_valid_scale_out_config(settings: Settings) -> None:
    assert settings.server.workers > 1
    assert (settings.policy.engine, settings.policy.manage) == ("opa", False)
    assert settings.policy.opa_url == "http://127.0.0.1:8181"  # the sidecar, over loopback
    assert settings.keys.backend == "kms"
    assert settings.server.tls_enabled
    assert settings.metrics.enabled


def test_container_ports_are_the_configured_listeners(
    manifests: dict[str, dict[str, Any]], settings: Settings
) -> None:
    ports = {p["name"]: p["containerPort"] for p in _container(manifests, "sekisho")["ports"]}
    assert str(ports["grpc"]) == settings.server.grpc_listen.rpartition(":")[2]
    assert str(ports["https"]) == settings.server.http_listen.rpartition(":")[2]
    service_ports = {p["targetPort"] for p in manifests["Service"]["spec"]["ports"]}
    assert service_ports == {"grpc", "https"}


def test_probes_use_healthz_and_readyz(manifests: dict[str, dict[str, Any]]) -> None:
    sekisho = _container(manifests, "sekisho")
    assert sekisho["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert sekisho["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert sekisho["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"


def test_grace_period_covers_the_drain(
    manifests: dict[str, dict[str, Any]], settings: Settings
) -> None:
    pod = manifests["Deployment"]["spec"]["template"]["spec"]
    pause = _container(manifests, "sekisho")["lifecycle"]["preStop"]["sleep"]["seconds"]
    drain = pause + settings.server.shutdown_grace_seconds + STOP_MARGIN_SECONDS
    assert pod["terminationGracePeriodSeconds"] >= drain


def test_workers_match_the_cpu_request(
    manifests: dict[str, dict[str, Any]], settings: Settings
) -> None:
    cpu = _container(manifests, "sekisho")["resources"]["requests"]["cpu"]
    assert int(cpu) == settings.server.workers


@pytest.mark.parametrize("name", ["sekisho", "opa"])
def test_containers_are_locked_down(manifests: dict[str, dict[str, Any]], name: str) -> None:
    context = _container(manifests, name)["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"]
    assert manifests["Deployment"]["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"]


def test_kms_credentials_come_from_the_service_account(
    manifests: dict[str, dict[str, Any]],
) -> None:
    account = manifests["ServiceAccount"]
    assert "eks.amazonaws.com/role-arn" in account["metadata"]["annotations"]
    pod = manifests["Deployment"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == account["metadata"]["name"]


def test_autoscaling_and_disruption_budget_target_the_deployment(
    manifests: dict[str, dict[str, Any]],
) -> None:
    name = manifests["Deployment"]["metadata"]["name"]
    assert manifests["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]["name"] == name
    assert manifests["HorizontalPodAutoscaler"]["spec"]["minReplicas"] >= 2
    labels = manifests["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert (
        manifests["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items()
        <= labels.items()
    )


def test_opa_api_takes_only_sekishos_token(
    manifests: dict[str, dict[str, Any]], settings: Settings
) -> None:
    # Issue 19: an unauthenticated OPA API lets any process in the pod push a granting module.
    opa = _container(manifests, "opa")
    assert {"--authentication=token", "--authorization=basic", "/etc/opa/authz.rego"} <= set(
        opa["args"]
    )
    assert "package system.authz" in manifests["ConfigMap"]["data"]["authz.rego"]
    env = settings.policy.opa_token_env
    assert env
    for name in ("sekisho", "opa"):
        names = {e["name"]: e for e in _container(manifests, name).get("env", [])}
        assert names[env]["valueFrom"]["secretKeyRef"]["name"] == "sekisho-opa-api-token"


def test_the_deployed_config_passes_the_exposure_check(settings: Settings) -> None:
    # Listeners on 0.0.0.0 with an OPA sidecar on loopback: allowed only because it says so.
    from sekisho.exposure import check_exposure, loopback_dependencies

    assert loopback_dependencies(settings) == ["policy.opa_url: http://127.0.0.1:8181"]
    assert settings.server.allow_loopback_dependencies
    check_exposure(settings)
