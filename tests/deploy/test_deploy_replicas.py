"""The Kubernetes variant for several replicas (`deploy/kubernetes-replicas/`): a kustomize overlay of the base.

Rendered by a small kustomize of our own (`render`: only what the overlay uses: resources, strategic merge patches
with `$patch: delete`, JSON 6902 replace/add), and where kubectl is installed also by `kubectl kustomize`, which must
agree with it. What must hold: two daemons replaced by RollingUpdate that never leaves zero up, a PodDisruptionBudget
that keeps one, the journal in PostgreSQL from a Secret (placeholders only in the example) and no volume claim, which
two pods on two nodes could not share.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from ges_retention.settings import Settings
from ges_retention.state import resolve_state_location

REPO = Path(__file__).resolve().parents[2]
OVERLAY = REPO / "deploy" / "kubernetes-replicas"
BASE = REPO / "deploy" / "kubernetes"
PLACEHOLDER = "REPLACE_ME"
KUBECTL_MISSING = "kubectl is not installed (the overlay is still rendered and checked without it)"


def _load_all(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [d for d in yaml.safe_load_all(handle) if d is not None]


MERGE_KEYS = ("name", "mountPath", "containerPort")


def _merge_list(base: list[Any], patch: list[Any]) -> list[Any]:
    if not all(isinstance(item, dict) for item in base + patch):
        return copy.deepcopy(patch)  # lists of scalars are replaced
    merged = copy.deepcopy(base)
    added: list[Any] = []
    for item in patch:
        key = next((k for k in MERGE_KEYS if k in item), None)
        assert key is not None, f"no merge key in {item}"
        index = next((i for i, old in enumerate(merged) if old.get(key) == item[key]), None)
        if item.get("$patch") == "delete":
            assert index is not None, f"nothing to delete for {item}"
            del merged[index]
        elif index is None:
            added.append(copy.deepcopy(item))
        else:
            merged[index] = _merge(merged[index], item)
    return added + merged  # kustomize puts new items first


def _merge(base: Any, patch: Any) -> Any:
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = copy.deepcopy(base)
        for key, value in patch.items():
            merged[key] = _merge(base[key], value) if key in base else copy.deepcopy(value)
        return merged
    if isinstance(base, list) and isinstance(patch, list):
        return _merge_list(base, patch)
    return copy.deepcopy(patch)


def _identity(document: dict[str, Any]) -> tuple[str, str]:
    return document["kind"], document["metadata"]["name"]


def render(directory: Path) -> list[dict[str, Any]]:
    """The objects `kubectl kustomize directory` builds, for the constructs our kustomizations use."""
    (kustomization,) = _load_all(directory / "kustomization.yaml")
    documents: list[dict[str, Any]] = []
    for resource in kustomization.get("resources", []):
        path = (directory / resource).resolve()
        documents.extend(render(path) if path.is_dir() else _load_all(path))
    for entry in kustomization.get("patches", []):
        if "target" in entry:
            target = entry["target"]
            (document,) = [d for d in documents if _identity(d) == (target["kind"], target["name"])]
            for op in yaml.safe_load(entry["patch"]):
                assert op["op"] in ("replace", "add"), op
                *parents, last = op["path"].strip("/").split("/")
                node = document
                for part in parents:
                    node = node[part]
                node[last] = copy.deepcopy(op["value"])
            continue
        patch = _load_all(directory / entry["path"])[0] if "path" in entry else yaml.safe_load(entry["patch"])
        index = next(i for i, d in enumerate(documents) if _identity(d) == _identity(patch))
        if patch.get("$patch") == "delete":
            del documents[index]
        else:
            documents[index] = _merge(documents[index], patch)
    return documents


def _canonical(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _canonical(item) for key, item in value.items()}
    if isinstance(value, list):
        items = [_canonical(item) for item in value]
        return sorted(items, key=json.dumps) if all(isinstance(item, dict) for item in items) else items
    return value


@pytest.fixture(scope="module")
def rendered() -> list[dict[str, Any]]:
    return render(OVERLAY)


def test_kubectl_kustomize_builds_what_the_tests_check(rendered: list[dict[str, Any]]) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip(KUBECTL_MISSING)
    result = subprocess.run(
        [kubectl, "kustomize", str(OVERLAY)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    built = [d for d in yaml.safe_load_all(result.stdout) if d is not None]
    by_identity = {_identity(d): _canonical(d) for d in built}
    assert by_identity == {_identity(d): _canonical(d) for d in rendered}


def _one(documents: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [d for d in documents if d["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def test_the_overlay_builds_on_the_base_and_leaves_out_the_claim_and_the_placeholders() -> None:
    (kustomization,) = _load_all(OVERLAY / "kustomization.yaml")
    assert kustomization["resources"] == ["../kubernetes", "pdb.yaml"]
    assert "secret.example.yaml" not in kustomization["resources"]
    assert all((OVERLAY / p["path"]).is_file() for p in kustomization["patches"] if "path" in p)
    assert (BASE / "kustomization.yaml").is_file()


def test_two_daemons_replaced_by_a_rolling_update_that_keeps_one_up(rendered: list[dict[str, Any]]) -> None:
    deployment = _one(rendered, "Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 2
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    (container,) = spec["template"]["spec"]["containers"]
    assert container["args"][0] == "daemon"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"  # 503 while PostgreSQL is unreachable


def test_the_state_is_postgresql_from_a_secret_and_no_claim_is_left(rendered: list[dict[str, Any]]) -> None:
    deployment = _one(rendered, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e for e in container["env"]}
    reference = env["GES_RETENTION_STATE"]["valueFrom"]["secretKeyRef"]
    assert "value" not in env["GES_RETENTION_STATE"], "the URL carries a password: from a Secret only"
    (secret,) = _load_all(OVERLAY / "secret.example.yaml")
    assert secret["metadata"]["name"] == reference["name"]
    assert secret["stringData"] == {reference["key"]: PLACEHOLDER}
    assert not [d for d in rendered if d["kind"] in ("PersistentVolumeClaim", "Secret")]
    assert all("persistentVolumeClaim" not in volume for volume in pod["volumes"])
    mounted = {m["name"] for m in container["volumeMounts"]}
    assert mounted <= {v["name"] for v in pod["volumes"]}
    ttl = float(env["GES_RETENTION_LEASE_TTL_S"]["value"])
    assert ttl == Settings.model_fields["lease_ttl_s"].default
    # SIGTERM hands running leases over once in-flight DELETEs end (the shutdown grace); the pod must live that long.
    assert pod["terminationGracePeriodSeconds"] > Settings.model_fields["shutdown_grace_s"].default


def test_the_documented_url_form_is_a_postgresql_state() -> None:
    text = (OVERLAY / "secret.example.yaml").read_text(encoding="utf-8")
    example = next(line.split("GES_RETENTION_STATE=", 1)[1] for line in text.splitlines() if "--from-literal" in line)
    location = resolve_state_location(example.strip().strip("'"))
    assert location.kind == "postgresql" and "PASSWORD" not in location.display


def test_a_disruption_budget_keeps_one_daemon(rendered: list[dict[str, Any]]) -> None:
    budget = _one(rendered, "PodDisruptionBudget")
    assert budget["spec"]["minAvailable"] == 1
    labels = _one(rendered, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_the_rendered_overlay_is_valid_under_kubernetes_validate(
    rendered: list[dict[str, Any]], tmp_path: Path
) -> None:
    pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is not installed (the test extra has it)")
    output = tmp_path / "rendered.yaml"
    output.write_text(yaml.safe_dump_all(rendered), encoding="utf-8")
    secret = OVERLAY / "secret.example.yaml"
    result = subprocess.run(
        [sys.executable, "-m", "kubernetes_validate", "--strict", str(output), str(secret)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    text = result.stdout + result.stderr
    assert result.returncode == 0, text
    assert text.count(" passed for resource ") == len(rendered) + 1, text
