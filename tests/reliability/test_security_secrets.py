"""Security: the service's secrets never appear in any line it writes.

The emulator is configured with distinctive credentials (`SECRET-...`): a static token, an AK/SK pair with a
security token, an IAM password, and the suite's other tests use them too (chaos: IAM password with token expiry;
crash: AK/SK; daemon: token and HTTP token). Here the CLI runs every credential scheme, in JSON and console log
formats at debug level, with faults, with wrong credentials (401 from GES and from IAM), and with invalid settings
under `--debug`. Every stdout and stderr line of every subprocess of the suite is scanned (`finish_cli`), for the
configured and the wrong credentials and for the IAM tokens the emulator issued.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from reliability_helpers import (
    IAM_PASSWORD,
    SECURITY_TOKEN,
    SK,
    TOKEN,
    WRONG_PASSWORD,
    WRONG_SK,
    WRONG_TOKEN,
    CliResult,
    assert_no_secrets,
    base_env,
    issued_tokens,
    record,
    run_cli,
    write_file,
)

from ges_retention.emulator.app import RunningEmulator, running_emulator
from ges_retention.emulator.config import (
    DEFAULT_AK,
    DEFAULT_IAM_DOMAIN,
    DEFAULT_IAM_USER,
    AccessKey,
    Agency,
    EmulatorConfig,
    FaultRates,
    IamUser,
)
from ges_retention.emulator.store import Store

SDK_AK = "SDKAK0000000000000002"
PLAN_TOKEN = TOKEN + "-plan"


def policy(project: str, agency: str | None = None) -> str:
    agency_line = f"    agency: {{domain: other-account, name: {agency}}}\n" if agency else ""
    return f"""\
version: 1
policies:
  - name: secrets
    project_id: {project}
    keep: {{last: 2, daily: 3}}
    safety: {{max_deletes: 1000, change_budget: unlimited}}
{agency_line}"""


def project(index: int) -> str:
    return f"0e{index:010d}"


TOKEN_ENV = {"GES_RETENTION_TOKEN": TOKEN}
AKSK_ENV = {"GES_RETENTION_AK": DEFAULT_AK, "GES_RETENTION_SK": SK, "GES_RETENTION_SECURITY_TOKEN": SECURITY_TOKEN}
PASSWORD_ENV = {
    "GES_RETENTION_IAM_USER": DEFAULT_IAM_USER,
    "GES_RETENTION_IAM_PASSWORD": IAM_PASSWORD,
    "GES_RETENTION_IAM_DOMAIN": DEFAULT_IAM_DOMAIN,
}
SDK_AKSK_ENV = {"GES_RETENTION_AK": SDK_AK, "GES_RETENTION_SK": SK}
DEBUG = {"GES_RETENTION_LOG_LEVEL": "debug"}
CONSOLE = {"GES_RETENTION_LOG_FORMAT": "console", "GES_RETENTION_LOG_LEVEL": "debug"}

# name: (command, credentials and log settings, expected exit code, an event (or text) proving the path was taken)
SCENARIOS: dict[str, tuple[list[str], dict[str, str], int, str]] = {
    "token, json, debug, faults": (["run"], TOKEN_ENV | DEBUG, 0, "request_retry"),
    "temporary AK/SK, console": (["run"], AKSK_ENV | CONSOLE, 0, "backup_deleted"),
    "SDK AK/SK names": (["run"], {"HUAWEICLOUD_SDK_AK": SDK_AK, "HUAWEICLOUD_SDK_SK": SK} | DEBUG, 0, "backup_deleted"),
    "IAM password, json, debug": (["run"], PASSWORD_ENV | DEBUG, 0, "backup_deleted"),
    "IAM password, console": (["run", "--dry-run"], PASSWORD_ENV | CONSOLE, 0, "backup_expired"),
    "live plan, token": (["plan", "--format", "json"], {"GES_RETENTION_TOKEN": PLAN_TOKEN} | DEBUG, 0, '"delete"'),
    "wrong token (401)": (["run"], {"GES_RETENTION_TOKEN": WRONG_TOKEN} | DEBUG, 1, "listing_failed"),
    "wrong secret key (401)": (["run"], AKSK_ENV | {"GES_RETENTION_SK": WRONG_SK} | DEBUG, 1, "listing_failed"),
    "wrong password (IAM 401)": (
        ["run"],
        PASSWORD_ENV | {"GES_RETENTION_IAM_PASSWORD": WRONG_PASSWORD} | CONSOLE,
        1,
        "listing_failed",
    ),
    "two schemes, --debug": (["--debug", "run"], TOKEN_ENV | PASSWORD_ENV, 2, "more than one credential scheme"),
    "incomplete AK/SK": (
        ["run"],
        {"GES_RETENTION_AK": DEFAULT_AK, "GES_RETENTION_SECURITY_TOKEN": SECURITY_TOKEN},
        2,
        "SK",
    ),
    "bad setting next to secrets": (["run"], TOKEN_ENV | {"GES_RETENTION_CONCURRENCY": "many"}, 2, "CONCURRENCY"),
    # Other accounts: the agency's temporary secret key and security token must not show either.
    "agency, AK/SK, json, debug": (["run"], SDK_AKSK_ENV | DEBUG, 0, "backup_deleted"),
    "agency, IAM password, console": (["run"], PASSWORD_ENV | CONSOLE, 0, "backup_deleted"),
    "agency refused": (["run"], SDK_AKSK_ENV | DEBUG, 1, "agency_refused"),
}
# Scenarios whose policy names an agency, and the agency's name (only "ges-retention" exists in the other account).
AGENCIES = {
    "agency, AK/SK, json, debug": "ges-retention",
    "agency, IAM password, console": "ges-retention",
    "agency refused": "not-trusted",
}


async def test_no_secret_in_any_output_line_of_any_credential_scheme_or_failure() -> None:
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    projects = [project(i) for i in range(len(SCENARIOS))]
    agency_indexes = [i for i, name in enumerate(SCENARIOS) if name in AGENCIES]
    config = EmulatorConfig(
        project_ids=projects,
        # Scenario 7 signs with the same AK and a wrong SK: the signature is refused (401).
        access_keys=[
            AccessKey(DEFAULT_AK, SK, projects[1], security_token=SECURITY_TOKEN),
            AccessKey(SDK_AK, SK, projects[2]),
        ],
        tokens={TOKEN: projects[0], PLAN_TOKEN: projects[5]},  # a static token is valid for one project
        iam_users=[IamUser(DEFAULT_IAM_DOMAIN, DEFAULT_IAM_USER, IAM_PASSWORD)],
        agencies=[Agency("other-account", "ges-retention", tuple(projects[i] for i in agency_indexes))],
        faults={"delete_backup": FaultRates(error_500=0.1, error_503=0.1, drop=0.1)},
        seed=5,
    )
    store = Store()
    for p in projects:
        store.seed(p, graphs=3, backups_per_graph=20, now_ms=now_ms, seed=1)

    async with running_emulator(store=store, config=config) as emulator:

        async def scenario(index: int, name: str) -> tuple[str, CliResult]:
            command, credentials, _, _ = SCENARIOS[name]
            path = f"policy-{index}.yaml"
            write_file(path, policy(projects[index], AGENCIES.get(name)))
            env = base_env(
                GES_RETENTION_ENDPOINT=emulator.url,
                GES_RETENTION_IAM_ENDPOINT=emulator.url,
                GES_RETENTION_RATE_LIMIT="0",
                GES_RETENTION_MAX_ATTEMPTS="10",
                GES_RETENTION_BACKOFF_MAX_S="0.01",
                GES_RETENTION_REQUEST_TIMEOUT_S="5",
                # Each its own state: fifteen processes on one SQLite file test its locking, not secrets (that `plan`
                # opening a state `run` is creating sees no state yet is tests/state/test_store_opening.py's).
                GES_RETENTION_STATE=f"state-{index}.db",
                **credentials,
            )
            result = await run_cli([*command, path], env, extra_secrets=lambda: issued_tokens(emulator))
            return name, result

        results = await asyncio.gather(*(scenario(i, name) for i, name in enumerate(SCENARIOS)))
        check_emulator_saw_the_secrets(emulator)

    for name, result in results:
        _, _, code, proof = SCENARIOS[name]
        assert result.code == code, f"{name}: exit {result.code}: {result.stderr[-1500:]}"
        assert proof in result.stdout + result.stderr, f"{name}: {proof!r} not seen"
        if code == 2:
            assert "Traceback" in result.stderr if "--debug" in SCENARIOS[name][0] else "Traceback" not in result.stderr
    record("security: CLI scenarios scanned for secrets (schemes, formats, failures)", len(results))


def check_emulator_saw_the_secrets(emulator: RunningEmulator) -> None:
    """The scan is not vacuous: the processes held and used the secrets (the emulator accepted and refused them)."""
    counts: dict[str, Any] = emulator.stats.to_json()["requests"]
    assert counts["list_backups"].get("200", 0) >= 6
    assert counts["list_backups"].get("401", 0) >= 2
    assert counts["iam_token"].get("201", 0) >= 2 and counts["iam_token"].get("401", 0) >= 1
    assert counts["iam_securitytokens"].get("201", 0) >= 2 and counts["iam_securitytokens"].get("403", 0) >= 1
    assert issued_tokens(emulator)


def test_the_scan_catches_a_secret_whole_cut_or_issued() -> None:
    """The scan itself can fail: a configured secret, a piece of one, or an IAM token the emulator issued."""
    for line in (f"error: {SK}", f'{{"password": "{IAM_PASSWORD[:10]}"}}', "x MIIemuabc y"):
        with pytest.raises(AssertionError):
            assert_no_secrets(["clean line", line], extra=["MIIemuabc"])
