"""deploy/kubernetes/prometheus-operator.yaml: generated from alerts.yaml and service.yaml, and every manifest valid
under kubernetes-validate (offline schemas of the Kubernetes API; the Operator's CRDs have none there, so their
metadata is checked against ObjectMeta and their spec against the fields the Operator reads)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tools.prometheus_operator import ALERTS, OUTPUT, SERVICE, render

K8S = OUTPUT.parent
OPERATOR_KINDS = {"ServiceMonitor", "PrometheusRule"}


def _load_all(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [d for d in yaml.safe_load_all(handle) if d is not None]


def _by_kind() -> dict[str, dict[str, Any]]:
    documents = _load_all(OUTPUT)
    kinds = {d["kind"]: d for d in documents}
    assert set(kinds) == OPERATOR_KINDS and len(documents) == 2
    return kinds


def test_the_committed_file_is_what_the_generator_writes() -> None:
    assert OUTPUT.read_text(encoding="utf-8") == render(), "stale: run `make deploy-generated`"


def test_the_prometheus_rule_carries_exactly_the_alert_rules() -> None:
    rule = _by_kind()["PrometheusRule"]
    with ALERTS.open(encoding="utf-8") as handle:
        alerts = yaml.safe_load(handle)
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["spec"] == {"groups": alerts["groups"]}


def test_the_service_monitor_scrapes_the_services_metrics_port() -> None:
    monitor = _by_kind()["ServiceMonitor"]
    (service,) = _load_all(SERVICE)
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector and selector.items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    # The alert rules select job="ges-retention": the Operator's job label is the Service's name by default.
    assert "jobLabel" not in monitor["spec"]
    assert service["metadata"]["name"] == "ges-retention"
    assert 'job="ges-retention"' in ALERTS.read_text(encoding="utf-8")


def test_the_operator_objects_stay_out_of_the_kustomization() -> None:
    (kustomization,) = _load_all(K8S / "kustomization.yaml")
    assert OUTPUT.name not in kustomization["resources"], "it would fail on clusters without the Operator's CRDs"


def _kubernetes_validate(paths: list[Path]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kubernetes_validate", "--strict", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_every_kubernetes_manifest_is_valid_under_kubernetes_validate(tmp_path: Path) -> None:
    pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is not installed (the test extra has it)")
    manifests = [p for p in sorted(K8S.glob("*.yaml")) if p.name not in ("kustomization.yaml", OUTPUT.name)]
    # The CRD objects: their metadata is an ObjectMeta, checked by validating it on a ConfigMap.
    for document in _load_all(OUTPUT):
        wrapper = tmp_path / f"{document['kind']}-metadata.yaml"
        wrapper.write_text(
            yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap", "metadata": document["metadata"]}),
            encoding="utf-8",
        )
        manifests.append(wrapper)
    result = _kubernetes_validate(manifests)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    passed = [line for line in output.splitlines() if " passed for resource " in line]
    assert len(passed) == sum(len(_load_all(p)) for p in manifests), output
    assert "WARN" not in output and "ERROR" not in output, output


def test_kubernetes_validate_rejects_an_unknown_field(tmp_path: Path) -> None:
    # The check above can fail: --strict refuses a field the schema does not know.
    pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is not installed (the test extra has it)")
    (service,) = _load_all(SERVICE)
    service["spec"]["portz"] = service["spec"].pop("ports")
    bad = tmp_path / "service.yaml"
    bad.write_text(yaml.safe_dump(service), encoding="utf-8")
    assert _kubernetes_validate([bad]).returncode != 0
