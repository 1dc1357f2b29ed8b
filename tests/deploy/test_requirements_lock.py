"""requirements.lock (uv, `make lock`): every runtime dependency pinned with its hashes, within pyproject.toml's
ranges; the Dockerfile, the systemd instructions and `make demo` install from it; pyproject declares only what the
service imports."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
LOCK = REPO / "requirements.lock"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))

# The import name of each runtime dependency; tzdata is the IANA database that zoneinfo reads, never imported.
IMPORT_NAMES = {
    "aiohttp": "aiohttp",
    "apscheduler": "apscheduler",
    "asyncpg": "asyncpg",
    "prometheus-client": "prometheus_client",
    "pydantic": "pydantic",
    "pydantic-settings": "pydantic_settings",
    "python-dateutil": "dateutil",
    "pyyaml": "yaml",
    "structlog": "structlog",
}
NOT_IMPORTED = {"tzdata"}


def _locked() -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes), from the lock's `name==version [; marker] \\ --hash=...` entries."""
    entries: dict[str, tuple[str, list[str]]] = {}
    text = re.sub(r"\\\n\s*", " ", LOCK.read_text(encoding="utf-8"))
    for line in text.splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9._-]+)==(\S+)(?:\s*;[^-]*)?((?:\s+--hash=sha256:[0-9a-f]{64})+)", line)
        assert match, f"not a pinned, hashed requirement: {line!r}"
        name, version, hashes = match.groups()
        entries[canonicalize_name(name)] = (version, hashes.split())
    return entries


def _runtime_requirements() -> list[Requirement]:
    return [Requirement(r) for r in PYPROJECT["project"]["dependencies"]]


def test_the_lock_pins_every_runtime_dependency_within_its_range() -> None:
    locked = _locked()
    assert LOCK.read_text(encoding="utf-8").splitlines()[1].strip("# ") == "make lock"
    for requirement in _runtime_requirements():
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{name} is not in requirements.lock: run `make lock`"
        version, hashes = locked[name]
        assert requirement.specifier.contains(version, prereleases=True), f"{name}=={version} vs {requirement}"
        assert hashes


def test_the_lock_holds_the_dependencies_of_what_it_locks() -> None:
    # Offline: the installed distributions' metadata, for those installed at the locked version.
    locked = _locked()
    checked = 0
    for name, (version, _) in locked.items():
        try:
            distribution = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        if distribution.version != version:
            continue
        checked += 1
        for text in distribution.requires or []:
            requirement = Requirement(text)
            if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
                continue
            assert canonicalize_name(requirement.name) in locked, f"{name} needs {requirement}, not locked"
    assert checked


def test_pyproject_declares_only_what_the_service_imports() -> None:
    sources = "\n".join(p.read_text(encoding="utf-8") for p in (REPO / "service" / "ges_retention").rglob("*.py"))
    declared = {canonicalize_name(r.name) for r in _runtime_requirements()}
    assert declared == set(IMPORT_NAMES) | NOT_IMPORTED, "update IMPORT_NAMES with the dependency"
    for name, module in IMPORT_NAMES.items():
        assert re.search(rf"^\s*(?:from|import) {module}\b", sources, re.M), f"{name} is declared but never imported"


def test_every_dependency_that_could_break_us_has_an_upper_bound() -> None:
    # structlog and tzdata use calendar versions: no major version to stop before.
    for requirement in _runtime_requirements():
        if canonicalize_name(requirement.name) in {"structlog", "tzdata"}:
            continue
        assert any(spec.operator in ("<", "<=", "~=", "==") for spec in requirement.specifier), requirement


def test_pyproject_license_is_an_spdx_string_with_a_setuptools_that_reads_it() -> None:
    assert PYPROJECT["project"]["license"] == "Apache-2.0"
    (setuptools,) = [Requirement(r) for r in PYPROJECT["build-system"]["requires"] if r.startswith("setuptools")]
    assert not setuptools.specifier.contains("76.9"), "setuptools reads an SPDX license string from 77.0 on"


def test_installs_from_the_lock_are_hash_checked() -> None:
    dockerfile = (REPO / "deploy" / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"pip install --require-hashes .*-r requirements\.lock", dockerfile)
    unit = (REPO / "deploy" / "systemd" / "ges-retention.service").read_text(encoding="utf-8")
    assert re.search(r"pip install --require-hashes -r \S*requirements\.lock", unit)
    assert re.search(r"pip install --no-deps \S+", unit)
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    runtime = makefile.split("$(RUNTIME_STAMP):", 1)[1].split("\n\n", 1)[0]
    assert "--require-hashes -r $(LOCK)" in runtime and "--no-deps -e ." in runtime
    assert "[test]" not in runtime
    assert re.search(r"^demo: \$\(RUNTIME_STAMP\)$", makefile, re.M), "make demo installs the runtime only"
