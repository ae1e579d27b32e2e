"""deploy/kubernetes/: every overlay renders, and every object is valid Kubernetes 1.32.

No cluster runs here. The overlays are rendered by deploy.kustomize (the same output as
``kubectl kustomize``, compared below wherever kubectl exists) and each object is
validated against the Kubernetes 1.32 OpenAPI schemas that the ``kubernetes-validate``
wheel ships (strict: an unknown or misspelt field fails). The remaining tests pin what
docs/deploy.md promises: probes, drain, disruption budget, autoscaling on a metric the
gateway really exports, the network policy, non-root pods with requests and limits.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from gateway.telemetry.metrics import GatewayMetrics

from deploy import kustomize
from tests.deploy.settings_env import SETTINGS_CLASSES, env_names, load_settings_class

REPO = Path(__file__).resolve().parents[2]
KUBERNETES = REPO / "deploy" / "kubernetes"
KUBERNETES_VERSION = "1.32.0"  # the version docs/deploy.md names
OVERLAYS = sorted(p.parent.name for p in (KUBERNETES / "overlays").glob("*/kustomization.yaml"))
MODEL_SERVICES = ("vision", "reasoner")


def rendered(overlay: str) -> list[dict[str, Any]]:
    return kustomize.render(KUBERNETES / "overlays" / overlay)


def one(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def container(objects: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return one(objects, "Deployment", name)["spec"]["template"]["spec"]["containers"][0]  # type: ignore[no-any-return]


def test_both_overlays_exist() -> None:
    assert OVERLAYS == ["cpu", "gpu"]
    assert "1.32" in (REPO / "docs" / "deploy.md").read_text()


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_rendered_object_validates_against_the_kubernetes_schema(overlay: str) -> None:
    objects = rendered(overlay)
    assert len(objects) >= 15
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(
                f"{overlay}: {obj['kind']}/{obj['metadata']['name']}: {exc.message} at {list(exc.path)}"
            )


def test_the_validator_rejects_a_misspelt_field() -> None:
    # guards against a validation that accepts anything (wrong version, lax mode)
    deployment = one(rendered("cpu"), "Deployment", "gateway")
    broken = kustomize.merge(
        deployment,
        {
            "spec": {
                "template": {
                    "spec": {
                        "containers": [
                            {
                                "name": "gateway",
                                "readinesProbe": {"httpGet": {"path": "/readyz", "port": "http"}},
                            }
                        ]
                    }
                }
            }
        },
    )
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


@pytest.mark.skipif(
    shutil.which("kubectl") is None, reason="kubectl (with its built-in kustomize) is not installed"
)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_renderer_matches_kubectl_kustomize(overlay: str) -> None:
    out = subprocess.run(
        ["kubectl", "kustomize", str(KUBERNETES / "overlays" / overlay)],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    theirs = {(o["kind"], o["metadata"]["name"]): o for o in yaml.safe_load_all(out) if o}
    mine = {(o["kind"], o["metadata"]["name"]): o for o in rendered(overlay)}
    assert mine == theirs


def test_the_renderer_refuses_what_it_does_not_implement(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: []\ncommonLabels: {a: b}\n")
    with pytest.raises(kustomize.KustomizeError, match="commonLabels"):
        kustomize.render(tmp_path)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_gateway_runs_two_replicas_with_probes_drain_and_a_disruption_budget(overlay: str) -> None:
    objects = rendered(overlay)
    deployment = one(objects, "Deployment", "gateway")
    assert deployment["spec"]["replicas"] >= 2
    gateway = container(objects, "gateway")
    assert gateway["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert gateway["livenessProbe"]["httpGet"]["path"] == "/healthz"
    drain_s = gateway["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert 0 < drain_s < deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    pdb = one(objects, "PodDisruptionBudget", "gateway")
    assert pdb["spec"]["selector"] == deployment["spec"]["selector"] and pdb["spec"]["minAvailable"] >= 1


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_gateway_autoscales_on_cpu_and_on_the_in_flight_gauge_it_exports(overlay: str) -> None:
    hpa = one(rendered(overlay), "HorizontalPodAutoscaler", "gateway")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "gateway" and hpa["spec"]["minReplicas"] >= 2
    metrics = {m["type"]: m for m in hpa["spec"]["metrics"]}
    assert metrics["Resource"]["resource"]["name"] == "cpu"
    exported = {m.name for m in GatewayMetrics().registry.collect()}
    assert metrics["Pods"]["pods"]["metric"]["name"] in exported


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_model_services_have_a_startup_probe_sized_for_slow_loads_and_a_model_volume(overlay: str) -> None:
    objects = rendered(overlay)
    for name in MODEL_SERVICES:
        spec = container(objects, name)
        startup = spec["startupProbe"]
        assert startup["httpGet"]["path"] == "/readyz"
        assert startup["periodSeconds"] * startup["failureThreshold"] >= 600, "GLM loads take minutes"
        assert any(m["mountPath"] == "/models" for m in spec["volumeMounts"])


def test_gpu_overlay_gives_each_model_service_a_gpu_and_the_weights_volume() -> None:
    objects = rendered("gpu")
    for name in MODEL_SERVICES:
        spec = container(objects, name)
        assert spec["resources"]["limits"]["nvidia.com/gpu"] == "1"
        env = {e["name"]: e["value"] for e in spec["env"]}
        assert env[f"{name.upper()}_DEVICE"] == "cuda" and env[f"{name.upper()}_DTYPE"] == "bfloat16"
        volumes = one(objects, "Deployment", name)["spec"]["template"]["spec"]["volumes"]
        models = next(v for v in volumes if v["name"] == "models")
        assert models == {
            "name": "models",
            "persistentVolumeClaim": {"claimName": "flashsight-models", "readOnly": True},
        }
    one(objects, "PersistentVolumeClaim", "flashsight-models")
    assert not any("nvidia.com/gpu" in str(container(rendered("cpu"), n)) for n in MODEL_SERVICES)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_the_gateway_reaches_the_model_services_and_redis(overlay: str) -> None:
    policies = [o for o in rendered(overlay) if o["kind"] == "NetworkPolicy"]
    deny = next(p for p in policies if p["spec"]["podSelector"] == {})
    assert deny["spec"]["policyTypes"] == ["Ingress"] and "ingress" not in deny["spec"]
    allowed: dict[str, list[Any]] = {}
    for policy in policies:
        selector = policy["spec"]["podSelector"]
        names = selector.get("matchLabels", {}).values() or [
            v for e in selector.get("matchExpressions", []) for v in e["values"]
        ]
        for name in names:
            allowed.setdefault(name, []).extend(policy["spec"].get("ingress", []))
    gateway_only = [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "gateway"}}}]
    for name in (*MODEL_SERVICES, "redis"):
        assert allowed[name] and all(rule["from"] == gateway_only for rule in allowed[name]), name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_runs_non_root_unprivileged_with_requests_and_limits(overlay: str) -> None:
    for deployment in (o for o in rendered(overlay) if o["kind"] == "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] != 0
        for spec in pod["containers"]:
            assert spec["securityContext"]["allowPrivilegeEscalation"] is False
            assert spec["securityContext"]["capabilities"]["drop"] == ["ALL"]
            assert {"cpu", "memory"} <= set(spec["resources"]["requests"]) <= set(spec["resources"]["limits"])


def test_configmap_sets_only_what_a_service_reads_and_points_at_the_services() -> None:
    objects = rendered("cpu")
    data = one(objects, "ConfigMap", "flashsight-config")["data"]
    readers: set[str] = set()
    for service in SETTINGS_CLASSES:
        cls = load_settings_class(service)
        assert cls is not None
        readers |= env_names(cls)
    libraries = {"HF_HOME", "HF_HUB_OFFLINE", "XDG_CACHE_HOME"}  # read by huggingface_hub and friends
    assert sorted(set(data) - readers - libraries) == []
    services = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Service"}
    for variable, service in (
        ("GATEWAY_VISION_URL", "vision"),
        ("GATEWAY_REASONER_URL", "reasoner"),
        ("REDIS_URL", "redis"),
    ):
        port = services[service]["spec"]["ports"][0]["port"]
        assert f"://{service}:{port}" in data[variable]
    for service in ("gateway", *MODEL_SERVICES):
        assert container(objects, service)["ports"][0]["containerPort"] == int(
            data[f"{service.upper()}_PORT"]
        )
