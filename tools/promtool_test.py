"""`make promtool`: promtool's checks of deploy/prometheus/alerts.yaml and its unit tests.

1. `promtool check rules deploy/prometheus/alerts.yaml` (syntax, PromQL and the annotation templates);
2. `promtool test rules tests/deploy/promtool_alert_tests.yaml`, on a copy of the rules without annotations: promtool
   compares annotations verbatim, and the expectations are about which alerts fire with which labels. The test file
   names its rule file `alerts-without-annotations.yaml`; this script writes that file next to a copy of the test
   file in a temporary directory.

Exit status: 0 both pass; 1 a check or a test failed; 2 promtool is not installed (Debian: `apt-get install
prometheus`). tests/deploy runs the same function under pytest.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
ALERTS = REPO / "deploy" / "prometheus" / "alerts.yaml"
UNIT_TESTS = REPO / "tests" / "deploy" / "promtool_alert_tests.yaml"
RULES_WITHOUT_ANNOTATIONS = "alerts-without-annotations.yaml"


def rules_without_annotations(text: str) -> str:
    document = yaml.safe_load(text)
    for group in document["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    return yaml.safe_dump(document, sort_keys=False)


def run_promtool(promtool: str) -> tuple[bool, str]:
    """(passed, promtool's output) of the rule check and the unit tests."""
    check = subprocess.run(
        [promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60, check=False
    )
    output = check.stdout + check.stderr
    if check.returncode != 0:
        return False, output
    with tempfile.TemporaryDirectory(prefix="ges-retention-promtool-") as tmp:
        directory = Path(tmp)
        rules = rules_without_annotations(ALERTS.read_text(encoding="utf-8"))
        (directory / RULES_WITHOUT_ANNOTATIONS).write_text(rules, encoding="utf-8")
        shutil.copyfile(UNIT_TESTS, directory / UNIT_TESTS.name)
        result = subprocess.run(
            [promtool, "test", "rules", UNIT_TESTS.name],
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    return result.returncode == 0, output + result.stdout + result.stderr


def main() -> int:
    promtool = shutil.which("promtool")
    if promtool is None:
        print("promtool is not installed (Debian: apt-get install prometheus)", file=sys.stderr)
        return 2
    passed, output = run_promtool(promtool)
    print(output, end="")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
