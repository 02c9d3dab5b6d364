"""The Kubernetes manifests (deploy/k8s) render with the pinned kustomize, validate strictly against
the Kubernetes schema, and deploy what the product needs: the capacity of the policy file, probes,
disruption budgets, least-privilege RBAC, default-deny network policies and a production overlay
that changes only what it says. These checks read the rendered objects; applied to a real API
server, with the control plane's capacity check and RBAC on them, they are tested in
tests/integration/kubernetes.

kustomize is the binary `make bootstrap` builds into the stack cache
(``$STACK_CACHE_DIR/bin/kustomize-$KUSTOMIZE_VERSION``), or ``STACK_KUSTOMIZE``. Missing: the tests
fail in CI mode (``CI=true`` / ``REQUIRE_BACKENDS=1``) and are skipped elsewhere.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import VersionNotSupportedError

from app.main import API_PREFIX
from controlplane.stack.keycloak import (
    CONTROLPLANE_API,
    DEPLOYED_CLIENTS,
    INVENTORY_API,
    deployable_realm,
    realm_json,
    secret_variable,
)
from controlplane.stack.settings import StackSettings, read_versions
from controlplane.targets.policy import cpu_millicores, load_capacity_policy, memory_bytes
from tests.integration.deploy.images import (
    PROBE_IN_IMAGE,
    REPO,
    controlplane_variables,
    inventory_variables,
)
from tests.support.backends import backends_required
from tests.support.kube import CONTROLPLANE_ROLE_CALLS

pytestmark = pytest.mark.integration

Manifest = dict[str, Any]

K8S = REPO / "deploy" / "k8s"
OVERLAYS = {"base": K8S / "base", "production": K8S / "overlays" / "production"}
CAPACITY_POLICY = REPO / "controlplane" / "policies" / "capacity.yaml"
NAMESPACE = "inventory"
#: The oldest Kubernetes minor the manifests target (kubernetes-validate bundles the schemas).
KUBERNETES_VERSION = "1.31"
PRODUCTION_REGISTRY = "registry.example.com"
PRODUCTION_HOST = "inventory.example.com"

API = {"app.kubernetes.io/name": "inventory", "app.kubernetes.io/component": "api"}
WORKER = {"app.kubernetes.io/name": "inventory-worker", "app.kubernetes.io/component": "worker"}
CONTROLPLANE = {
    "app.kubernetes.io/name": "controlplane",
    "app.kubernetes.io/component": "controlplane",
}
DASHBOARDS = {"app.kubernetes.io/name": "dashboards", "app.kubernetes.io/component": "dashboards"}
KEYCLOAK = {"app.kubernetes.io/name": "keycloak", "app.kubernetes.io/component": "identity"}
KEYCLOAK_IMAGE = "quay.io/keycloak/keycloak:26.7.3"


# --- rendering ------------------------------------------------------------------------------------
def kustomize_binary() -> Path:
    override = os.environ.get("STACK_KUSTOMIZE")
    if override:
        path = Path(override)
    else:
        version = read_versions().get("KUSTOMIZE_VERSION", "unknown")
        path = StackSettings().cache_dir / "bin" / f"kustomize-{version}"
    if path.is_file() and os.access(path, os.X_OK):
        return path
    message = (
        f"tool kustomize is not installed at {path} (run `make bootstrap` or set STACK_KUSTOMIZE)"
    )
    if backends_required():
        pytest.fail(f"{message} (CI mode: a missing tool is a failure)", pytrace=False)
    pytest.skip(message)


def render(kustomize: Path, folder: Path) -> list[Manifest]:
    done = subprocess.run(
        [str(kustomize), "build", str(folder)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"kustomize build {folder} failed:\n{done.stderr}"
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[Manifest]]:
    kustomize = kustomize_binary()
    return {name: render(kustomize, folder) for name, folder in OVERLAYS.items()}


# --- helpers --------------------------------------------------------------------------------------
def of_kind(objects: list[Manifest], kind: str) -> list[Manifest]:
    return [o for o in objects if o["kind"] == kind]


def one(objects: list[Manifest], kind: str, name: str) -> Manifest:
    found = [o for o in of_kind(objects, kind) if o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def pod_spec(deployment: Manifest) -> dict[str, Any]:
    spec: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return spec


def pod_labels(deployment: Manifest) -> dict[str, str]:
    labels: dict[str, str] = deployment["spec"]["template"]["metadata"]["labels"]
    return labels


def all_containers(deployment: Manifest) -> list[dict[str, Any]]:
    spec = pod_spec(deployment)
    return [*spec.get("initContainers", []), *spec["containers"]]


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A label selector with matchLabels only (the manifests use nothing else)."""
    assert set(selector) <= {"matchLabels"}, f"unexpected selector {selector}"
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def deployment_with(objects: list[Manifest], labels: dict[str, str]) -> Manifest:
    found = [
        d for d in of_kind(objects, "Deployment") if pod_labels(d) == {**pod_labels(d), **labels}
    ]
    assert len(found) == 1, f"expected one Deployment with pods labelled {labels}"
    return found[0]


# --- schema ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_every_rendered_object_validates_strictly_against_the_kubernetes_schema(
    rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    objects = rendered[overlay]
    assert {o["kind"] for o in objects} >= {
        "Namespace",
        "ServiceAccount",
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "Ingress",
        "Role",
        "RoleBinding",
        "ConfigMap",
    }
    problems: list[str] = []
    for obj in objects:
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(part) for part in exc.path)
            problems.append(f"{where}: {path}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            problems.append(f"{where}: {exc.message}")
        except VersionNotSupportedError as exc:
            pytest.fail(f"kubernetes-validate: {exc.message}; upgrade it", pytrace=False)
        if obj["kind"] != "Namespace":
            assert obj["metadata"].get("namespace") == NAMESPACE, where
    assert problems == []


def test_strict_validation_rejects_a_field_kubernetes_does_not_know(
    rendered: dict[str, list[Manifest]],
) -> None:
    deployment = copy.deepcopy(one(rendered["base"], "Deployment", "inventory"))
    deployment["spec"]["template"]["spec"]["containers"][0]["resource"] = {}
    with pytest.raises(kubernetes_validate.ValidationError, match="'resource' was unexpected"):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


# --- capacity -------------------------------------------------------------------------------------
@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_inventory_deployment_and_hpa_carry_the_capacity_policy(
    rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    policy = load_capacity_policy(CAPACITY_POLICY)
    wanted = policy.spec.service("inventory")
    assert wanted is not None
    objects = rendered[overlay]
    deployment = one(objects, "Deployment", "inventory")
    hpa = one(objects, "HorizontalPodAutoscaler", "inventory")
    assert deployment["metadata"]["namespace"] == policy.spec.namespace
    assert deployment["metadata"]["labels"]["app.kubernetes.io/name"] == "inventory"
    # The HPA owns the replica count: applying the manifests must not reset it.
    assert "replicas" not in deployment["spec"]
    resources = pod_spec(deployment)["containers"][0]["resources"]
    for kind in ("requests", "limits"):
        quantities = getattr(wanted.resources, kind)
        assert cpu_millicores(str(resources[kind]["cpu"])) == cpu_millicores(quantities.cpu), kind
        assert memory_bytes(str(resources[kind]["memory"])) == memory_bytes(quantities.memory), kind
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "inventory",
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (
        wanted.replicas.min,
        wanted.replicas.max,
    )
    assert hpa["spec"]["metrics"] == [
        {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": wanted.target_cpu_percent},
            },
        }
    ]


# --- RBAC -----------------------------------------------------------------------------------------
def test_control_plane_role_grants_the_calls_of_its_kubernetes_adapters_in_its_namespace(
    rendered: dict[str, list[Manifest]],
) -> None:
    objects = rendered["base"]
    assert of_kind(objects, "ClusterRole") == []
    assert of_kind(objects, "ClusterRoleBinding") == []
    roles = of_kind(objects, "Role")
    assert [r["metadata"]["name"] for r in roles] == ["controlplane"]
    granted: set[tuple[str, str, str]] = set()
    for rule in roles[0]["rules"]:
        assert set(rule) == {"apiGroups", "resources", "verbs"}, rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                granted.update((group, resource, verb) for verb in rule["verbs"])
    assert not any("*" in part for grant in granted for part in grant), granted
    # The calls of the orchestrator (list+watch caches) and the actuator (HPA bounds, scale
    # subresource), no more: tests/integration/kubernetes/test_controlplane_rbac.py makes them
    # with this Role's token on a real API server, and sees everything else refused.
    assert granted == CONTROLPLANE_ROLE_CALLS
    binding = one(objects, "RoleBinding", "controlplane")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "controlplane",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "controlplane", "namespace": NAMESPACE}
    ]
    assert pod_spec(one(objects, "Deployment", "controlplane"))["serviceAccountName"] == (
        "controlplane"
    )


def test_only_the_control_plane_pods_get_a_kubernetes_api_token(
    rendered: dict[str, list[Manifest]],
) -> None:
    objects = rendered["base"]
    accounts = {a["metadata"]["name"]: a for a in of_kind(objects, "ServiceAccount")}
    with_token = set()
    for deployment in of_kind(objects, "Deployment"):
        spec = pod_spec(deployment)
        account = accounts[spec["serviceAccountName"]]
        mounted = spec.get(
            "automountServiceAccountToken", account.get("automountServiceAccountToken", True)
        )
        if mounted:
            with_token.add(deployment["metadata"]["name"])
    assert with_token == {"controlplane"}


# --- pods -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_every_container_has_readiness_and_liveness_probes_it_can_answer(
    rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    deployments = of_kind(rendered[overlay], "Deployment")
    assert len(deployments) == 5
    for deployment in deployments:
        for container in pod_spec(deployment)["containers"]:
            where = f"{deployment['metadata']['name']}/{container['name']}"
            ports = {p["name"] for p in container.get("ports", [])} | {
                p["containerPort"] for p in container.get("ports", [])
            }
            for kind in ("readinessProbe", "livenessProbe"):
                probe = container.get(kind)
                assert probe, f"{where} has no {kind}"
                handlers = {"httpGet", "tcpSocket", "exec", "grpc"} & set(probe)
                assert len(handlers) == 1, f"{where} {kind}: {probe}"
                handler = handlers.pop()
                if handler in {"httpGet", "tcpSocket"}:
                    assert probe[handler]["port"] in ports, f"{where} {kind} probes a closed port"
                if handler == "exec":
                    assert probe["exec"]["command"][:2] == ["python", PROBE_IN_IMAGE], where
    api = pod_spec(one(rendered[overlay], "Deployment", "inventory"))["containers"][0]
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    keycloak = pod_spec(one(rendered[overlay], "Deployment", "keycloak"))["containers"][0]
    assert keycloak["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": "management"}
    assert keycloak["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": "management"}


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_every_pod_meets_pod_security_restricted_and_sizes_each_container(
    rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    objects = rendered[overlay]
    namespace = one(objects, "Namespace", NAMESPACE)
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for deployment in of_kind(objects, "Deployment"):
        spec = pod_spec(deployment)
        name = deployment["metadata"]["name"]
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        # Service links would inject e.g. CONTROLPLANE_PORT=tcp://... into every pod.
        assert spec["enableServiceLinks"] is False, name
        for container in all_containers(deployment):
            where = f"{name}/{container['name']}"
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["capabilities"]["drop"] == ["ALL"], where
            assert context["readOnlyRootFilesystem"] is True, where
            resources = container["resources"]
            for key in ("cpu", "memory"):
                request, limit = resources["requests"][key], resources["limits"][key]
                measure = cpu_millicores if key == "cpu" else memory_bytes
                assert measure(str(request)) <= measure(str(limit)), where


def test_settings_given_to_the_processes_are_variables_they_read(
    rendered: dict[str, list[Manifest]],
) -> None:
    objects = rendered["base"]
    known = inventory_variables() | controlplane_variables()
    given: set[str] = set()
    for config in of_kind(objects, "ConfigMap"):
        given |= set(config["data"])
    for deployment in of_kind(objects, "Deployment"):
        for container in all_containers(deployment):
            given |= {e["name"] for e in container.get("env", [])}
    ours = {name for name in given if name.startswith(("INVENTORY_", "CONTROLPLANE_"))}
    assert ours, "no INVENTORY_* / CONTROLPLANE_* setting found"
    assert ours - known == set()


# --- disruption budgets ---------------------------------------------------------------------------
@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_each_replicated_workload_has_one_budget_that_lets_a_drain_proceed(
    rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    objects = rendered[overlay]
    budgets = of_kind(objects, "PodDisruptionBudget")
    hpas = {
        h["spec"]["scaleTargetRef"]["name"]: h for h in of_kind(objects, "HorizontalPodAutoscaler")
    }
    for deployment in of_kind(objects, "Deployment"):
        name = deployment["metadata"]["name"]
        hpa = hpas.get(name)
        floor = hpa["spec"]["minReplicas"] if hpa else deployment["spec"].get("replicas", 1)
        covering = [b for b in budgets if selects(b["spec"]["selector"], pod_labels(deployment))]
        if floor < 2:
            assert covering == [], f"{name}: a budget on a single replica blocks node drains"
            continue
        assert len(covering) == 1, f"{name}: {len(covering)} disruption budgets"
        spec = covering[0]["spec"]
        allowed = (
            spec["maxUnavailable"] if "maxUnavailable" in spec else floor - spec["minAvailable"]
        )
        assert allowed >= 1, f"{name}: its budget allows no eviction at {floor} replicas"
    api_budget = [b for b in budgets if selects(b["spec"]["selector"], API)]
    assert [b["metadata"]["name"] for b in api_budget] == ["inventory"]


# --- network --------------------------------------------------------------------------------------
def peer_name(peer: dict[str, Any]) -> str:
    """``namespace/name`` of a policy peer, or ``cidr:<block>``; refuses peers that match all."""
    if "ipBlock" in peer:
        cidr: str = peer["ipBlock"]["cidr"]
        assert cidr not in {"0.0.0.0/0", "::/0"}, "a peer open to every address"
        return f"cidr:{cidr}"
    pods = peer.get("podSelector", {}).get("matchLabels")
    assert pods, f"a peer that matches every pod: {peer}"
    namespace = NAMESPACE
    if "namespaceSelector" in peer:
        labels = peer["namespaceSelector"].get("matchLabels", {})
        assert "kubernetes.io/metadata.name" in labels, f"a peer in every namespace: {peer}"
        namespace = labels["kubernetes.io/metadata.name"]
    name = pods.get("app.kubernetes.io/name") or pods.get("k8s-app")
    return f"{namespace}/{name}"


def allowed(objects: list[Manifest], labels: dict[str, str], direction: str) -> set[str]:
    """``peer:port/protocol`` strings the policies let reach (ingress) or be reached (egress)."""
    side = "from" if direction == "ingress" else "to"
    result: set[str] = set()
    for policy in of_kind(objects, "NetworkPolicy"):
        if not selects(policy["spec"]["podSelector"], labels):
            continue
        for rule in policy["spec"].get(direction, []):
            where = policy["metadata"]["name"]
            assert rule.get(side), f"{where}: a {direction} rule without peers allows everyone"
            assert rule.get("ports"), f"{where}: a {direction} rule without ports allows all ports"
            for peer in rule[side]:
                for port in rule["ports"]:
                    result.add(f"{peer_name(peer)}:{port['port']}/{port.get('protocol', 'TCP')}")
    return result


DNS = {"kube-system/kube-dns:53/UDP", "kube-system/kube-dns:53/TCP"}
DATA = {"cidr:10.0.20.0/24:5432/TCP", "cidr:10.0.20.0/24:6379/TCP"}
TRACES = {"monitoring/jaeger:4317/TCP", "monitoring/jaeger:4318/TCP"}
#: The issuer at the public host, through the ingress controller (Keycloak behind it).
ISSUER = {"ingress-nginx/ingress-nginx:80/TCP", "ingress-nginx/ingress-nginx:443/TCP"}


def test_network_policies_deny_everything_not_allowed_in_both_directions(
    rendered: dict[str, list[Manifest]],
) -> None:
    policies = of_kind(rendered["base"], "NetworkPolicy")
    deny = [
        p
        for p in policies
        if p["spec"]["podSelector"] == {}
        and sorted(p["spec"]["policyTypes"]) == ["Egress", "Ingress"]
        and "ingress" not in p["spec"]
        and "egress" not in p["spec"]
    ]
    assert [p["metadata"]["name"] for p in deny] == ["default-deny"]
    # Nothing re-opens a direction for every pod except DNS.
    for policy in policies:
        if policy["spec"]["podSelector"] == {} and policy not in deny:
            assert "ingress" not in policy["spec"], policy["metadata"]["name"]
            assert allowed([policy], {}, "egress") == DNS


def test_only_the_ingress_controller_reaches_the_api_besides_prometheus_scraping_it(
    rendered: dict[str, list[Manifest]],
) -> None:
    objects = rendered["base"]
    assert allowed(objects, pod_labels(deployment_with(objects, API)), "ingress") == {
        "ingress-nginx/ingress-nginx:8000/TCP",
        "monitoring/prometheus:8000/TCP",
    }
    assert one(objects, "Ingress", "inventory")["spec"]["ingressClassName"] == "nginx"


def test_each_component_reaches_only_what_it_needs(rendered: dict[str, list[Manifest]]) -> None:
    objects = rendered["base"]
    labels = {
        "api": pod_labels(deployment_with(objects, API)),
        "worker": pod_labels(deployment_with(objects, WORKER)),
        "controlplane": pod_labels(deployment_with(objects, CONTROLPLANE)),
        "dashboards": pod_labels(deployment_with(objects, DASHBOARDS)),
        "keycloak": pod_labels(deployment_with(objects, KEYCLOAK)),
    }
    assert allowed(objects, labels["worker"], "ingress") == set()
    assert allowed(objects, labels["dashboards"], "ingress") == set()
    assert allowed(objects, labels["controlplane"], "ingress") == {
        "inventory/dashboards:8080/TCP",
        "monitoring/alertmanager:8080/TCP",
    }
    assert allowed(objects, labels["api"], "egress") == DNS | DATA | TRACES | ISSUER
    assert allowed(objects, labels["worker"], "egress") == DNS | DATA | TRACES
    assert allowed(objects, labels["controlplane"], "egress") == DNS | ISSUER | {
        "cidr:10.0.0.0/16:443/TCP",  # the Kubernetes API server inside the VNet
        "cidr:10.0.0.0/16:6443/TCP",
        "cidr:10.0.20.0/24:5432/TCP",  # its PostgreSQL store
        "monitoring/prometheus:9090/TCP",
        "monitoring/elasticsearch:9200/TCP",
        "monitoring/jaeger:16686/TCP",
    }
    assert allowed(objects, labels["dashboards"], "egress") == DNS | ISSUER | {
        "inventory/controlplane:8080/TCP"
    }
    # Keycloak: browsers and the pods above come through the ingress controller; its database.
    assert allowed(objects, labels["keycloak"], "ingress") == {
        "ingress-nginx/ingress-nginx:8080/TCP"
    }
    assert allowed(objects, labels["keycloak"], "egress") == DNS | {"cidr:10.0.20.0/24:5432/TCP"}


# --- ingress --------------------------------------------------------------------------------------
@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_the_ingress_publishes_the_api_and_the_sign_in_routes_and_nothing_else(
    rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    objects = rendered[overlay]
    ingresses = of_kind(objects, "Ingress")
    assert len(ingresses) == 1
    routes = [
        (path["path"], path["pathType"], path["backend"]["service"])
        for rule in ingresses[0]["spec"]["rules"]
        for path in rule["http"]["paths"]
    ]
    keycloak = {"name": "keycloak", "port": {"name": "http"}}
    assert routes == [
        (API_PREFIX, "Prefix", {"name": "inventory", "port": {"name": "http"}}),
        # Keycloak's realms (sign-in pages, tokens, keys) and their static files; not /admin.
        ("/realms", "Prefix", keycloak),
        ("/resources", "Prefix", keycloak),
    ]
    service = one(objects, "Service", "inventory")
    assert service["spec"]["selector"] == API
    (port,) = service["spec"]["ports"]
    api = pod_spec(one(objects, "Deployment", "inventory"))["containers"][0]
    assert port["name"] == "http"
    assert {p["name"]: p["containerPort"] for p in api["ports"]}[port["targetPort"]] == 8000


# --- production overlay ---------------------------------------------------------------------------
GENERATED = re.compile(r"^(?P<name>[a-z0-9-]+-config)-[a-z0-9]{10}$")


def flatten(objects: list[Manifest]) -> dict[str, Any]:
    """``Kind/name/json/path`` → value, with the configMapGenerator's hash suffixes removed."""
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(f"{prefix}/{key}", item)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(f"{prefix}/{index}", item)
        else:
            flat[prefix] = GENERATED.sub(r"\g<name>", value) if isinstance(value, str) else value

    for obj in objects:
        name = GENERATED.sub(r"\g<name>", obj["metadata"]["name"])
        walk(f"{obj['kind']}/{name}", obj)
    return flat


def test_production_overlay_changes_what_it_declares_and_nothing_else(
    rendered: dict[str, list[Manifest]],
) -> None:
    base, production = flatten(rendered["base"]), flatten(rendered["production"])
    changed = {
        path for path in base.keys() | production.keys() if base.get(path) != production.get(path)
    }
    images = {
        path
        for path in base
        if path.endswith("/image") and str(base[path]).startswith("inventory-slo/")
    }
    assert len(images) == 5  # four processes and the API's migration step
    # Keycloak runs the same pinned image everywhere.
    keycloak_image = "Deployment/keycloak/spec/template/spec/containers/0/image"
    assert base[keycloak_image] == production[keycloak_image] == KEYCLOAK_IMAGE
    issuer = f"https://{PRODUCTION_HOST}/realms/inventory"
    issuers = {
        "ConfigMap/inventory-config/data/INVENTORY_AUTH_ISSUER": issuer,
        "ConfigMap/controlplane-config/data/CONTROLPLANE_OIDC_ISSUER": issuer,
        "ConfigMap/dashboards-config/data/DASHBOARDS_OIDC_ISSUER": issuer,
        "ConfigMap/keycloak-config/data/KC_HOSTNAME": f"https://{PRODUCTION_HOST}",
    }
    assert {path: production[path] for path in issuers} == issuers
    assert changed == images | set(issuers) | {
        "Deployment/inventory-worker/spec/replicas",
        "ConfigMap/inventory-config/data/INVENTORY_TRACE_SAMPLE_RATIO",
        "Ingress/inventory/spec/rules/0/host",
        "Ingress/inventory/spec/tls/0/hosts/0",
        "Ingress/inventory/spec/tls/0/secretName",
    }
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    for path in images:
        name, _, tag = str(base[path]).partition(":")
        assert tag == "dev", f"{path}: the base runs locally built images"
        assert production[path] == f"{PRODUCTION_REGISTRY}/{name}:{project['version']}", path
    assert (
        base["Deployment/inventory-worker/spec/replicas"],
        production["Deployment/inventory-worker/spec/replicas"],
    ) == (2, 4)
    assert production["ConfigMap/inventory-config/data/INVENTORY_TRACE_SAMPLE_RATIO"] == "0.1"
    assert production["Ingress/inventory/spec/rules/0/host"] == PRODUCTION_HOST
    assert production["Ingress/inventory/spec/tls/0/hosts/0"] == PRODUCTION_HOST
    assert production["Ingress/inventory/spec/tls/0/secretName"] == "inventory-tls"


# --- secrets --------------------------------------------------------------------------------------
def secret_references(value: Any) -> Iterator[tuple[str, str | None]]:
    """(Secret name, key or None) for every Secret the objects refer to."""
    if isinstance(value, dict):
        if "secretKeyRef" in value:
            yield value["secretKeyRef"]["name"], value["secretKeyRef"]["key"]
        if "secret" in value and isinstance(value["secret"], dict):
            secret = value["secret"]
            keys = [item["key"] for item in secret.get("items", [])] or [None]
            for key in keys:
                yield secret["secretName"], key
        if "secretName" in value and "hosts" in value:  # Ingress TLS
            yield value["secretName"], None
        for item in value.values():
            yield from secret_references(item)
    elif isinstance(value, list):
        for item in value:
            yield from secret_references(item)


def test_the_secrets_the_manifests_need_are_documented_and_none_is_committed(
    rendered: dict[str, list[Manifest]],
) -> None:
    readme = (REPO / "deploy" / "README.md").read_text(encoding="utf-8")
    needed = {ref for objects in rendered.values() for ref in secret_references(objects)}
    assert {name for name, _ in needed} >= {
        "inventory-secrets",
        "controlplane-secrets",
        "dashboards-secrets",
        "keycloak-secrets",
    }
    undocumented = {
        f"{name}/{key}"
        for name, key in needed
        if f"`{name}`" not in readme or (key is not None and f"`{key}`" not in readme)
    }
    assert undocumented == set()
    assert all(of_kind(objects, "Secret") == [] for objects in rendered.values())


def test_no_manifest_file_is_left_out_of_its_kustomization() -> None:
    for folder in OVERLAYS.values():
        kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
        listed = {Path(entry).name for entry in kustomization.get("resources", [])}
        for path in folder.glob("*.yaml"):
            if path.name != "kustomization.yaml":
                assert path.name in listed, f"{path} is not in {folder}/kustomization.yaml"


# --- identity provider ----------------------------------------------------------------------------
REALM_FILE = K8S / "base" / "keycloak" / "inventory-realm.json"
#: The console is reached by port-forward (dashboards.yaml): its sign-in returns there.
PORT_FORWARDED_CONSOLE = ("http://localhost:8050", "http://127.0.0.1:8050")
REALM_IMPORT_DIR = "/opt/keycloak/data/import"


def container_env(objects: list[Manifest], deployment: str) -> dict[str, Any]:
    """What the first container of ``deployment`` sees: its ConfigMaps' data, then its ``env``
    (a plain value as it is, a Secret reference as its ``valueFrom``)."""
    container = pod_spec(one(objects, "Deployment", deployment))["containers"][0]
    configs = {c["metadata"]["name"]: c["data"] for c in of_kind(objects, "ConfigMap")}
    env: dict[str, Any] = {}
    for source in container.get("envFrom", []):
        env.update(configs[source["configMapRef"]["name"]])
    for entry in container.get("env", []):
        env[entry["name"]] = entry.get("value", entry.get("valueFrom"))
    return env


def mounted_secret(objects: list[Manifest], deployment: str, path: str) -> tuple[str, str]:
    """(Secret, key) of the file ``path`` in the first container of ``deployment``."""
    spec = pod_spec(one(objects, "Deployment", deployment))
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    for mount in spec["containers"][0].get("volumeMounts", []):
        secret = volumes[mount["name"]].get("secret")
        if secret is None or not path.startswith(mount["mountPath"] + "/"):
            continue
        relative = path.removeprefix(mount["mountPath"] + "/")
        for item in secret["items"]:
            if item["path"] == relative:
                return secret["secretName"], item["key"]
    raise AssertionError(f"{deployment}: nothing mounts a Secret's key at {path}")


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_every_process_trusts_the_issuer_keycloak_serves_at_the_public_host(
    rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    objects = rendered[overlay]
    hostname = container_env(objects, "keycloak")["KC_HOSTNAME"]
    realm = json.loads(REALM_FILE.read_text(encoding="utf-8"))["realm"]
    issuer = f"{hostname}/realms/{realm}"
    assert container_env(objects, "inventory")["INVENTORY_AUTH_ISSUER"] == issuer
    assert container_env(objects, "controlplane")["CONTROLPLANE_OIDC_ISSUER"] == issuer
    assert container_env(objects, "dashboards")["DASHBOARDS_OIDC_ISSUER"] == issuer
    # Browsers and pods reach the issuer at the Ingress's host, which routes /realms to Keycloak.
    ingress = one(objects, "Ingress", "inventory")
    (rule,) = ingress["spec"]["rules"]
    parts = urlsplit(hostname)
    assert parts.hostname == rule["host"]
    assert parts.path == ""
    backends = {p["path"]: p["backend"]["service"]["name"] for p in rule["http"]["paths"]}
    assert backends["/realms"] == "keycloak"
    if overlay == "production":
        assert parts.scheme == "https"
        assert rule["host"] in ingress["spec"]["tls"][0]["hosts"]
    # Audiences and clients are the realm's.
    clients = {client.client_id: client for client in DEPLOYED_CLIENTS}
    assert container_env(objects, "inventory")["INVENTORY_AUTH_AUDIENCE"] == INVENTORY_API
    controlplane = container_env(objects, "controlplane")
    assert controlplane["CONTROLPLANE_OIDC_AUDIENCE"] == CONTROLPLANE_API
    probe = clients[controlplane["CONTROLPLANE_INVENTORY_CLIENT_ID"]]
    assert INVENTORY_API in probe.audiences
    assert probe.service_account
    console = clients[container_env(objects, "dashboards")["DASHBOARDS_OIDC_CLIENT_ID"]]
    assert console.browser_login


def test_keycloak_imports_the_exported_realm_with_each_client_secret_from_a_secret(
    rendered: dict[str, list[Manifest]],
) -> None:
    objects = rendered["base"]
    exported = realm_json(deployable_realm(PORT_FORWARDED_CONSOLE))
    assert REALM_FILE.read_text(encoding="utf-8") == exported, (
        "deploy/k8s/base/keycloak/inventory-realm.json is not the export: run "
        "`controlplane stack realm --out deploy/k8s/base/keycloak/inventory-realm.json "
        "--console-url http://localhost:8050 --console-url http://127.0.0.1:8050`"
    )
    spec = pod_spec(one(objects, "Deployment", "keycloak"))
    container = spec["containers"][0]
    assert container["image"] == KEYCLOAK_IMAGE
    assert "--import-realm" in container["args"]
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == REALM_IMPORT_DIR]
    realm_map = one(objects, "ConfigMap", volumes[mount["name"]]["configMap"]["name"])
    assert realm_map["data"] == {"inventory-realm.json": exported}
    # Every placeholder of the file is a variable filled from the Secret (a required key).
    placeholders = set(re.findall(r"\$\{(REALM_SECRET_[A-Z_]+)\}", exported))
    env = container_env(objects, "keycloak")
    given = {name: env[name] for name in env if name.startswith("REALM_SECRET_")}
    assert set(given) == placeholders
    for client in DEPLOYED_CLIENTS:
        reference = given[secret_variable(client.client_id)]["secretKeyRef"]
        assert reference == {"name": "keycloak-secrets", "key": client.client_id}


def test_the_processes_read_their_client_secrets_from_mounted_secrets(
    rendered: dict[str, list[Manifest]],
) -> None:
    objects = rendered["base"]
    controlplane = container_env(objects, "controlplane")
    assert mounted_secret(
        objects, "controlplane", controlplane["CONTROLPLANE_INVENTORY_CLIENT_SECRET_FILE"]
    ) == ("controlplane-secrets", "inventory-client-secret")
    dashboards = container_env(objects, "dashboards")
    assert mounted_secret(
        objects, "dashboards", dashboards["DASHBOARDS_OIDC_CLIENT_SECRET_FILE"]
    ) == (
        "dashboards-secrets",
        "oidc-client-secret",
    )
    assert mounted_secret(objects, "dashboards", dashboards["DASHBOARDS_SESSION_SECRET_FILE"]) == (
        "dashboards-secrets",
        "session-secret",
    )
