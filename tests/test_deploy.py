"""Deployment files under deploy/: the Kustomize overlays rendered by kubectl and validated offline against the
Kubernetes API schema (kubernetes-validate), the compose and Prometheus files, and the Dockerfiles (dockerfile-parse).
Fast and offline: no cluster, no container engine, no network."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from dockerfile_parse import DockerfileParser
from dockerfile_parse.parser import image_from

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
OVERLAYS = ("cpu", "gpu")
DOCKERFILES = (DEPLOY / "docker" / "Dockerfile", DEPLOY / "docker" / "Dockerfile.gpu")
# The Kubernetes release the manifests are written for (kubectl here is 1.32).
K8S_VERSION = "1.32.0"
# Custom resources have no schema in kubernetes-validate (core API only): KServe's InferenceService is the only
# one under deploy/k8s, and nothing else may be skipped.
CUSTOM_KINDS = {"InferenceService"}
EXPECTED_KINDS = {
    ("Deployment", "gsv-triton"),
    ("Deployment", "gsv-gateway"),
    ("Service", "gsv-triton"),
    ("Service", "gsv-gateway"),
    ("HorizontalPodAutoscaler", "gsv-triton"),
    ("PodDisruptionBudget", "gsv-triton"),
    ("PodDisruptionBudget", "gsv-gateway"),
    ("PersistentVolumeClaim", "gsv-models"),
    ("PersistentVolumeClaim", "gsv-voices"),
    ("PersistentVolumeClaim", "gsv-checkpoints"),
    ("Job", "gsv-export"),
}
Doc = dict[str, Any]
# one `pip install ...` command of a RUN line, up to the next shell operator
PIP_INSTALL = re.compile(r"pip install[^&;|]*")


@cache
def rendered(overlay: str) -> tuple[Doc, ...]:
    """The objects `kubectl kustomize` renders for ``overlay`` (kubectl itself: the tool users apply with)."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl is not installed: run scripts/setup.sh (it installs kubectl for these tests)")
    done = subprocess.run([kubectl, "kustomize", str(DEPLOY / "k8s" / "overlays" / overlay)],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, f"kubectl kustomize overlays/{overlay} failed:\n{done.stderr}"
    return tuple(d for d in yaml.safe_load_all(done.stdout) if d)


def find(docs: tuple[Doc, ...], kind: str, name: str) -> Doc:
    matches = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name}, found {len(matches)}"
    return matches[0]


def container(deployment: Doc, name: str) -> Doc:
    return next(c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == name)


def validate(doc: Doc) -> None:
    # strict: unknown fields (a misspelt probe, say) fail too, as the API server would reject or drop them
    try:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = ".".join(str(p) for p in exc.path)
        pytest.fail(f"{doc['kind']} {doc['metadata']['name']}: {path}: {exc.message}")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_and_validates(overlay: str) -> None:
    docs = rendered(overlay)
    assert EXPECTED_KINDS <= {(d["kind"], d["metadata"]["name"]) for d in docs}
    for doc in docs:
        assert doc["kind"] not in CUSTOM_KINDS, "an overlay holds only core API objects"
        validate(doc)
    # every placeholder image mapped to a pinned one by the overlay's images: block
    for workload in (d for d in docs if d["kind"] in ("Deployment", "Job")):
        pod = workload["spec"]["template"]["spec"]
        for c in pod.get("initContainers", []) + pod["containers"]:
            name, _, tag = c["image"].rpartition(":")
            assert "/" in name and tag and tag != "latest", f"{workload['metadata']['name']}: image {c['image']}"


def test_side_files_validate() -> None:
    """The adapter rule and the KServe InferenceService, which no overlay includes."""
    rules = yaml.safe_load((DEPLOY / "k8s" / "base" / "prometheus-adapter-rules.yaml").read_text())
    validate(rules)
    (rule,) = yaml.safe_load(rules["data"]["config.yaml"])["rules"]
    assert rule["name"]["as"] == "avg_time_queue_us"
    assert "nv_inference_queue_duration_us" in rule["metricsQuery"]
    assert "nv_inference_request_success" in rule["metricsQuery"]

    isvc = yaml.safe_load((DEPLOY / "k8s" / "kserve" / "inferenceservice.yaml").read_text())
    assert isvc["kind"] in CUSTOM_KINDS and isvc["apiVersion"] == "serving.kserve.io/v1beta1"
    model = isvc["spec"]["predictor"]["model"]
    assert model["modelFormat"]["name"] == "triton" and model["runtime"] == "kserve-tritonserver"
    assert model["storageUri"] == "pvc://gsv-models" and model["protocolVersion"] == "v2"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_triton_probes_and_volumes(overlay: str) -> None:
    deployment = find(rendered(overlay), "Deployment", "gsv-triton")
    triton = container(deployment, "triton")
    assert triton["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert triton["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    startup = triton["startupProbe"]
    # full-size models load for minutes: the startup probe must allow at least gsv-triton serve's 600 s
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 600
    assert {p["name"]: p["containerPort"] for p in triton["ports"]} == {"http": 8000, "grpc": 8001, "metrics": 8002}
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    mount = next(m for m in triton["volumeMounts"] if m["mountPath"] == "/models")
    assert mount.get("readOnly") is True
    assert volumes[mount["name"]]["persistentVolumeClaim"]["claimName"] == "gsv-models"
    service = find(rendered(overlay), "Service", "gsv-triton")
    assert {p["name"]: p["port"] for p in service["spec"]["ports"]} == {"http": 8000, "grpc": 8001, "metrics": 8002}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_gateway_reaches_triton_and_probes(overlay: str) -> None:
    gateway = container(find(rendered(overlay), "Deployment", "gsv-gateway"), "gateway")
    env = {e["name"]: e.get("value") for e in gateway["env"]}
    assert env["GSV_TRITON_URL"] == "gsv-triton:8001" and env["GSV_TRITON_HTTP_URL"] == "gsv-triton:8000"
    assert env["GSV_VOICE_DIR"] == "/voices"
    # /health is 503 whenever Triton is down: right for readiness, a restart loop as liveness
    assert gateway["readinessProbe"]["httpGet"]["path"] == "/health"
    assert gateway["livenessProbe"]["httpGet"]["path"] != "/health"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_hpa_scales_triton_on_queue_time(overlay: str) -> None:
    docs = rendered(overlay)
    spec = find(docs, "HorizontalPodAutoscaler", "gsv-triton")["spec"]
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "gsv-triton"}
    (metric,) = spec["metrics"]
    assert metric["type"] == "Pods" and metric["pods"]["metric"]["name"] == "avg_time_queue_us"
    assert metric["pods"]["target"]["type"] == "AverageValue"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_disruption_budgets_select_their_pods(overlay: str) -> None:
    docs = rendered(overlay)
    for name in ("gsv-triton", "gsv-gateway"):
        pdb = find(docs, "PodDisruptionBudget", name)["spec"]
        pod_labels = find(docs, "Deployment", name)["spec"]["template"]["metadata"]["labels"]
        assert pdb["minAvailable"] >= 1
        assert pdb["selector"]["matchLabels"].items() <= pod_labels.items()


def test_gpu_only_in_the_gpu_overlay() -> None:
    def gpus(overlay: str) -> dict[str, Any]:
        return {
            d["metadata"]["name"]: c["resources"].get("limits", {}).get("nvidia.com/gpu")
            for d in rendered(overlay) if d["kind"] in ("Deployment", "Job")
            for c in d["spec"]["template"]["spec"]["containers"]
        }  # fmt: skip

    assert gpus("gpu") == {"gsv-triton": 1, "gsv-export": 1, "gsv-gateway": None}
    assert set(gpus("cpu").values()) == {None}
    job = find(rendered("gpu"), "Job", "gsv-export")["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "EXPORT_TARGET", "value": "gpu-torch"} in job["env"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_nothing_runs_as_root_or_privileged(overlay: str) -> None:
    for workload in (d for d in rendered(overlay) if d["kind"] in ("Deployment", "Job")):
        name, pod = workload["metadata"]["name"], workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"].get("runAsUser", 1) != 0, name
        assert not pod.get("hostPID") and not pod.get("hostNetwork"), name
        for c in pod.get("initContainers", []) + pod["containers"]:
            context = c.get("securityContext", {})
            assert context.get("privileged") is not True, f"{name}/{c['name']}"
            assert context.get("allowPrivilegeEscalation") is False, f"{name}/{c['name']}"
            assert context.get("runAsUser", 1) != 0 and context.get("runAsNonRoot") is not False, f"{name}/{c['name']}"


def stages(dockerfile: Path) -> dict[str, tuple[str, list[Doc]]]:
    """{stage: (its FROM with the file's ARG defaults applied, its instructions)}."""
    parser = DockerfileParser(fileobj=io.BytesIO(dockerfile.read_bytes()))
    parents = iter(parser.parent_images)  # FROM images with the top-level ARG defaults substituted
    result: dict[str, tuple[str, list[Doc]]] = {}
    current: list[Doc] = []
    for instruction in parser.structure:
        if instruction["instruction"] == "FROM":
            _, name = image_from(instruction["value"])
            current = []
            result[name or f"stage{len(result)}"] = (next(parents), current)
        elif result:
            current.append(instruction)
    return result


def chain(all_stages: dict[str, tuple[str, list[Doc]]], target: str) -> list[Doc]:
    """The instructions that make ``target``, its ancestors' first."""
    parent, instructions = all_stages[target]
    return (chain(all_stages, parent) if parent in all_stages else []) + instructions


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_bases_are_pinned(dockerfile: Path) -> None:
    all_stages = stages(dockerfile)
    assert all_stages, f"{dockerfile.name} has no FROM"
    for name, (parent, _) in all_stages.items():
        if parent in all_stages:
            continue  # an earlier stage
        image, _, tag = parent.rpartition(":")
        assert "$" not in parent and "/" not in tag, f"stage {name}: FROM {parent} is unresolved or has no tag"
        assert image and tag and tag != "latest", f"stage {name}: FROM {parent} is not pinned to a tag"
    # the build context is the repository root: its ignore file must exclude everything not allowed back in
    ignore = dockerfile.with_name(dockerfile.name + ".dockerignore").read_text().splitlines()
    assert [line for line in ignore if line and not line.startswith("#")][0] == "*"


def test_cpu_target_runs_unprivileged_with_healthcheck() -> None:
    all_stages = stages(DOCKERFILES[0])
    assert {"cpu", "gateway", "export"} <= all_stages.keys()
    for target in ("cpu", "gateway"):
        instructions = chain(all_stages, target)
        users = [i["value"].split(":")[0] for i in instructions if i["instruction"] == "USER"]
        assert users and users[-1] not in ("root", "0"), f"{target} runs as {users[-1:] or 'root'}"
        checks = [i["value"] for i in instructions if i["instruction"] == "HEALTHCHECK"]
        assert checks and checks[-1].strip() != "NONE" and "/health" in checks[-1], target
        # the serving images carry no torch: only the export target installs that extra
        installs = [p for i in instructions if i["instruction"] == "RUN" for p in PIP_INSTALL.findall(i["value"])]
        assert installs and not any("export" in p or "torch" in p for p in installs), (target, installs)


def test_compose_services_and_prometheus() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert {"triton", "gateway", "prometheus"} <= services.keys()
    assert services["triton"]["command"][:1] == ["serve"]
    env = services["gateway"]["environment"]
    assert env["GSV_TRITON_URL"] == "triton:8001" and env["GSV_TRITON_HTTP_URL"] == "triton:8000"
    assert env["GSV_VOICE_DIR"] == "/voices"
    image, _, tag = services["prometheus"]["image"].rpartition(":")
    assert image and tag and tag != "latest"
    # every built service names a target that the Dockerfile has
    targets = stages(DOCKERFILES[0]).keys()
    for name, service in services.items():
        if "build" in service:
            assert service["build"]["target"] in targets, name
    # the mounted Prometheus config scrapes both Triton's metrics and the gateway's
    config_path = next(v.split(":")[0] for v in services["prometheus"]["volumes"] if "prometheus.yml" in v)
    config = yaml.safe_load((DEPLOY / config_path).read_text())
    scraped = {t for job in config["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
    assert {"triton:8002", "gateway:8080"} <= scraped
